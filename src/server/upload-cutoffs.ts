/**
 * HTTP/2 uploads the server answers before their end, and uploads cut off mid-way.
 *
 * Why: a Node.js HTTP/2 client (Node 20: connect-node's, grpc-js, this project's SDK) loses part of
 * its session's memory budget for good whenever a stream ends while it is still sending the
 * body: after a few the client refuses its own new calls on that connection with
 * ENHANCE_YOUR_CALM, although nothing is wrong with the server. At Node's default budget (10 MB)
 * nine LogError bodies of 2 MiB answered over the cap did it; the server itself is unaffected
 * (with a 1 GB client budget the same 300 calls all passed). The server does not cause it where
 * it can help it:
 *
 * - an answer sent before its request body was read to the end (a body past its method's cap, a
 *   stream the server ends) no longer ends the stream: the rest of the body is read and dropped
 *   ({@link drainUnreadBody}), up to a bound in bytes and time; a refusal of an unauthenticated
 *   call reads much less ({@link REFUSED_DRAIN}: it must cost the server nothing);
 * - a session that still sees {@link CUTOFFS_PER_SESSION} uploads cut off (past a drain bound,
 *   or the client cancelling its own uploads) is sent GOAWAY, gracefully: calls under way finish,
 *   and the client opens a fresh connection, with a fresh budget, for new ones.
 *
 * test/e2e/upload-cutoffs.e2e.test.ts holds both.
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

/**
 * A stream counts as an upload cut off when it closes before its request body ended, after this
 * much of the body arrived (a device stream cancelled between small messages does not count).
 */
export const CUTOFF_MIN_BYTES = 256 * 1024;

/** Uploads cut off on one session before it is sent GOAWAY. */
export const CUTOFFS_PER_SESSION = 3;

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

/**
 * Watches `session`'s streams and sends it GOAWAY once {@link CUTOFFS_PER_SESSION} uploads were
 * cut off; `onGoaway` is told (for the transport's counters).
 */
export function watchUploadCutoffs(session: http2.ServerHttp2Session, onGoaway: () => void): void {
  let cutoffs = 0;
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    // Counted as Node pushes the body into the stream: a `data` listener would set the stream
    // flowing before the request object listens, and the first bytes would be lost. The body's
    // end (END_STREAM) is a push of null while the stream is open; a reset, and closing it, push
    // null too (so `readableEnded` cannot tell them apart).
    let received = 0;
    let ended = false;
    const push = stream.push;
    stream.push = function (this: http2.ServerHttp2Stream, chunk: unknown, encoding?: BufferEncoding) {
      if (chunk != null) received += (chunk as Buffer).length;
      else if (!this.destroyed && !this.closed) ended = true;
      return push.call(this, chunk, encoding);
    } as typeof stream.push;
    stream.once("close", () => {
      if (ended || received < CUTOFF_MIN_BYTES) return;
      if (++cutoffs === CUTOFFS_PER_SESSION && !session.closed && !session.destroyed) {
        onGoaway();
        goAwayGracefully(session);
      }
    });
  });
}

/** How long a session told to go away still takes new streams the client sent before it heard. */
export const GOAWAY_GRACE_MS = 1000;

/**
 * Tells `session`'s client to open no more streams on it, without refusing those already on
 * their way (RFC 9113, 6.8: a first GOAWAY with the largest stream id, the final one a round trip
 * later): a single GOAWAY naming the last stream the server saw made a call the client had just
 * started fail with REFUSED_STREAM, which connect-node reports as `Internal`. Streams under way
 * finish; the session ends when the last one does.
 */
export function goAwayGracefully(session: http2.ServerHttp2Session): void {
  if (session.closed || session.destroyed) return;
  session.goaway(http2.constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
  setTimeout(() => {
    if (!session.closed && !session.destroyed) session.close();
  }, GOAWAY_GRACE_MS).unref();
}
