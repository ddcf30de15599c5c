/**
 * HTTP/2 spoken by hand over a TCP socket, for tests that must do what a well-behaved client
 * (Node's, which queues streams over the server's limit) never does: open more streams than the
 * server allows, or stop acknowledging settings. Only what those tests need: frames in and out,
 * and request headers as HPACK literals (no table, no Huffman).
 */
import net from "node:net";

/** Frame types (RFC 9113 §6). */
export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 } as const;
/** Frame flags used here. */
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
/** Error codes (RFC 9113 §7). */
export const H2Error = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, REFUSED_STREAM: 7 } as const;
/** SETTINGS_MAX_CONCURRENT_STREAMS. */
export const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;

/** One frame received. */
export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** Encodes one frame. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK header block of literals without indexing (names and values under 127 bytes). */
export function headerBlock(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    if (name.length > 126 || value.length > 126) throw new Error("headerBlock: keep names and values under 127 bytes");
    parts.push(Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value));
  }
  return Buffer.concat(parts);
}

/** The settings a SETTINGS frame carries, by identifier. */
export function settingsOf(f: Frame): Map<number, number> {
  const out = new Map<number, number>();
  for (let i = 0; i + 6 <= f.payload.length; i += 6) out.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
  return out;
}

/** The error code of a RST_STREAM or GOAWAY frame. */
export function errorCodeOf(f: Frame): number {
  return f.type === FrameType.GOAWAY ? f.payload.readUInt32BE(4) : f.payload.readUInt32BE(0);
}

/** A connection speaking raw HTTP/2. */
export interface RawHttp2Connection {
  readonly socket: net.Socket;
  /** Every frame received so far, in order. */
  readonly frames: Frame[];
  /** Resolves once the socket is closed. */
  readonly closed: Promise<void>;
  write(bytes: Buffer): void;
  /** The first received frame matching `test` (waiting up to `timeoutMs`), or undefined. */
  waitFor(test: (f: Frame) => boolean, timeoutMs: number): Promise<Frame | undefined>;
  destroy(): void;
}

/**
 * Connects, sends the preface and an empty SETTINGS frame. With `ackSettings` the server's
 * SETTINGS are acknowledged as they arrive (a compliant client); without, they never are.
 */
export async function connectRawHttp2(port: number, host: string, options: { ackSettings: boolean }): Promise<RawHttp2Connection> {
  const socket = net.connect(port, host);
  socket.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  const frames: Frame[] = [];
  const waiters = new Set<() => void>();
  let buffered = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const f: Frame = {
        type: buffered[3]!,
        flags: buffered[4]!,
        streamId: buffered.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(buffered.subarray(9, 9 + length)),
      };
      buffered = buffered.subarray(9 + length);
      frames.push(f);
      if (options.ackSettings && f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0) {
        socket.write(frame(FrameType.SETTINGS, Flag.ACK, 0));
      }
    }
    for (const w of waiters) w();
  });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  void closed.then(() => {
    for (const w of waiters) w();
  });
  socket.write(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  socket.write(frame(FrameType.SETTINGS, 0, 0));
  return {
    socket,
    frames,
    closed,
    write: (bytes) => socket.write(bytes),
    waitFor(test, timeoutMs) {
      return new Promise((resolve) => {
        const check = () => {
          const found = frames.find(test);
          if (found || socket.destroyed) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          resolve(frames.find(test));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    destroy: () => socket.destroy(),
  };
}
