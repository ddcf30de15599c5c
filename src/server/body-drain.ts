/**
 * HTTP/2 uploads the server answers before their end: the rest is read, not reset.
 *
 * Why: a Node.js HTTP/2 client (Node 20: connect-node's, grpc-js, this project's SDK) loses part of
 * its session's memory budget for good whenever a stream ends while it is still sending the
 * body: after a few the client refuses its own new calls on that connection with
 * ENHANCE_YOUR_CALM, although nothing is wrong with the server. At Node's default budget (10 MB)
 * nine LogError bodies of 2 MiB answered over the cap did it; the server itself is unaffected
 * (with a 1 GB client budget the same 300 calls all passed). The server does not cause it where
 * it can help it: an answer sent before its request body was read to the end (a body past its method's cap, a
 * stream the server ends) no longer ends the stream: the rest of the body is read and dropped
 * ({@link drainUnreadBody}), up to a bound in bytes and time; a refusal of an unauthenticated call
 * reads much less ({@link REFUSED_DRAIN}: it must cost the server nothing).
 *
 * Not done: telling a session whose uploads were cut off anyway to go away (GOAWAY), so that its
 * client starts a fresh budget. Tried: it made calls on their way fail REFUSED_STREAM, and
 * connect-node reject a pending call ("received GOAWAY without any open streams").
 * test/e2e/body-drain.e2e.test.ts holds it.
 */
import http2 from "node:http2";

/** How much of an answered request's body is read and dropped before its stream is reset instead. */
export interface DrainLimit {
  readonly bytes: number;
  readonly ms: number;
}

/** An answered call's body: read and dropped up to 16 MiB, for up to 10 s. */
export const ANSWERED_DRAIN: DrainLimit = { bytes: 16 * 1024 * 1024, ms: 10_000 };

/** A call refused for its credentials: its body is hardly read (256 KiB, 1 s). */
export const REFUSED_DRAIN: DrainLimit = { bytes: 256 * 1024, ms: 1000 };

const drainLimits = new WeakMap<http2.ServerHttp2Stream, DrainLimit>();

/** Sets the bound of {@link drainUnreadBody} for `stream` (else {@link ANSWERED_DRAIN}). */
export function limitDrain(stream: http2.ServerHttp2Stream, limit: DrainLimit): void {
  drainLimits.set(stream, limit);
}

/**
 * Reads and drops the rest of an answered HTTP/2 request's body (called as its answer ends), so
 * its stream ends without a reset; past its bound ({@link limitDrain}) the stream is closed with
 * RST_STREAM(NO_ERROR), which tells the client to stop sending (RFC 9113, 8.1). A no-op for a
 * body already read to its end or a stream already closed.
 */
export function drainUnreadBody(stream: http2.ServerHttp2Stream): void {
  if (stream.readableEnded || stream.destroyed || stream.closed) return;
  const limit = drainLimits.get(stream) ?? ANSWERED_DRAIN;
  // The request object of Node's compatibility layer stops the stream whenever its own buffer is
  // full, and nobody reads that buffer once the call is answered: its listener goes, ours drops.
  stream.removeAllListeners("data");
  let read = 0;
  const stop = () => {
    clearTimeout(timer);
    stream.off("data", count);
    // Not before the answer is out: a reset that follows it too closely was seen to lose it. The
    // stream keeps flowing meanwhile (a paused one would never close).
    const close = () =>
      setTimeout(() => {
        if (!stream.destroyed && !stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
      }, 20).unref();
    if (stream.writableFinished) close();
    else stream.once("finish", close);
  };
  const count = (chunk: Buffer) => {
    read += chunk.length;
    if (read > limit.bytes) stop();
  };
  const timer = setTimeout(stop, limit.ms);
  timer.unref();
  stream.on("data", count);
  stream.once("close", () => clearTimeout(timer));
  stream.on("error", () => {}); // a client gone mid-body: nothing left to answer
  stream.resume();
}
