/**
 * Client-side event ids: RFC 9562 version-7 UUIDs (time-ordered, so the server's unique index on
 * `event_id` grows at its right edge). Platform-neutral: uses Web Crypto's `getRandomValues`,
 * which browsers offer on plain-HTTP pages too (unlike `randomUUID`), and Node 20 as a global.
 *
 * @module
 */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * A new event id: a version-7 UUID whose first 48 bits are `nowMs`.
 *
 * ```ts
 * await analytics.logError({ errorMessage: "boom", eventId: newEventId() });
 * ```
 */
export function newEventId(nowMs: number = Date.now()): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  let t = Math.max(0, Math.floor(nowMs));
  for (let i = 5; i >= 0; i--) {
    b[i] = t % 256;
    t = Math.floor(t / 256);
  }
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  let s = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
    s += HEX[b[i]!];
  }
  return s;
}
