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
  return text.toString("latin1", 0, 36);
}

const HEX = Buffer.from("0123456789abcdef", "latin1");
const DASH = 0x2d;
const text = Buffer.alloc(36);

/** Where each byte's two hex digits start in a canonical UUID (8-4-4-4-12, dashes between). */
const HEX_PAIR_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34] as const;

/** Hex digit values by character code below 128 (-1 where not a hex digit). */
const HEX_VALUE = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < 10; i++) t[0x30 + i] = i;
  for (let i = 0; i < 6; i++) t[0x61 + i] = t[0x41 + i] = 10 + i;
  return t;
})();

/** True when `s` has the dashes of a canonical UUID where they belong and is 36 long. */
const hasUuidShape = (s: string): boolean =>
  s.length === 36 && s.charCodeAt(8) === DASH && s.charCodeAt(13) === DASH && s.charCodeAt(18) === DASH && s.charCodeAt(23) === DASH;

/** The value of hex digit `c` (a character code), or -1. */
const hexValue = (c: number): number => (c < 128 ? HEX_VALUE[c]! : -1);

/**
 * True when `s` is a UUID in canonical text form (any version, either case). A loop over a table
 * rather than a regular expression: every event id of every batch is checked (docs/BENCHMARKS.md#measured-choices-in-the-code).
 */
export function isUuid(s: string): boolean {
  if (!hasUuidShape(s)) return false;
  for (let i = 0; i < 16; i++) {
    const at = HEX_PAIR_AT[i]!;
    if ((hexValue(s.charCodeAt(at)) | hexValue(s.charCodeAt(at + 1))) < 0) return false;
  }
  return true;
}

/**
 * Writes the 16 bytes of canonical UUID `s` into `out` at `offset`; false when `s` is not one
 * (what was written is then meaningless). For binary COPY, which stores a uuid as its bytes.
 */
export function writeUuidBytes(s: string, out: Uint8Array, offset: number): boolean {
  if (!hasUuidShape(s)) return false;
  for (let i = 0; i < 16; i++) {
    const at = HEX_PAIR_AT[i]!;
    const hi = hexValue(s.charCodeAt(at));
    const lo = hexValue(s.charCodeAt(at + 1));
    if ((hi | lo) < 0) return false;
    out[offset + i] = (hi << 4) | lo;
  }
  return true;
}
