import { randomFillSync } from "node:crypto";
import { nativeBuffer } from "./native-buffer.js";

const pool = Buffer.allocUnsafe(16 * 256);
let poolOffset = pool.length;

/**
 * A time-ordered UUID (RFC 9562 version 7). Ids made in the same millisecond are ordered by their
 * random tail, not by creation; that is fine for index locality, which is why we use v7 rather
 * than v4: new rows land at the right edge of the primary-key b-tree.
 */
export function uuidV7(nowMs: number = Date.now()): string {
  if (poolOffset >= pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const o = poolOffset;
  poolOffset += 16;
  // 48-bit big-endian millisecond timestamp, then version 7 and the RFC 9562 variant.
  pool.writeUIntBE(nowMs, o, 6);
  pool[o + 6] = (pool[o + 6]! & 0x0f) | 0x70;
  pool[o + 8] = (pool[o + 8]! & 0x3f) | 0x80;
  // Hex digits written into a scratch buffer and read as one string: one allocation per id
  // instead of a hex string and five slices (ids are made for every stored row).
  let p = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) text[p++] = DASH;
    const byte = pool[o + i]!;
    text[p++] = HEX[byte >>> 4]!;
    text[p++] = HEX[byte & 0x0f]!;
  }
  return text.latin1Slice(0, 36);
}

const HEX = Buffer.from("0123456789abcdef", "latin1");
const DASH = 0x2d;
const text = nativeBuffer(Buffer.alloc(36));

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `s` is a UUID in canonical text form (any version). */
export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}
