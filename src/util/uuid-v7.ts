import { randomFillSync } from "node:crypto";

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
  const b = pool.subarray(poolOffset, poolOffset + 16);
  poolOffset += 16;
  // 48-bit big-endian millisecond timestamp.
  b.writeUIntBE(nowMs, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `s` is a UUID in canonical text form (any version). */
export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}
