/**
 * The ordered pipeline of a device metrics stream: one loop reads and starts batches while
 * earlier ones are written, the other acknowledges them in order, each once it is committed.
 * What a batch is and how it is decided belong to the caller ({@link IngestPipelineSteps}); this
 * module owns the order, the back-pressure and how the stream ends.
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { DeviceMetricsWriter, IngestResult, StreamAck, StreamOptions } from "./device-metrics-ingest.js";

/** A batch the pipeline started: its answer settles once its stored samples are committed. */
export interface StartedBatch {
  readonly sequence: bigint;
  /** Samples in the message: the most rows the next message can add. */
  readonly samples: number;
  readonly result: Promise<IngestResult>;
}

/** What the pipeline runs for the messages of one stream. */
export interface IngestPipelineSteps<M> {
  /** Most batches started and not yet acknowledged. */
  readonly maxInFlight: number;
  /** No message is read while it has no room (a writer without `whenWritable` always has). */
  readonly writer: Pick<DeviceMetricsWriter, "whenWritable">;
  /**
   * Validates and decides one message and starts writing what it keeps, synchronously. Throws to
   * end the stream with that error after the acknowledgements before it. `halt` stops the
   * pipeline from starting more batches (call it when a write fails).
   */
  start(message: M, halt: () => void): StartedBatch;
  /** Called once, as the stream ends. */
  end(): void;
}

const noop = (): void => {};

/**
 * Runs one stream: reads messages and starts each (at most `maxInFlight` at once, and no read
 * while the writer is full, so HTTP/2 flow control slows the device down), and yields one
 * acknowledgement per batch, in order, each only after its samples are committed.
 *
 * An error from `start` or from a batch's write ends the stream with that error, after the
 * acknowledgements of the batches before it. An expired token (`expirySignal`) and a server
 * shutdown end it after acknowledging what it took, with `Unauthenticated` and `Unavailable`
 * respectively; a cancelled call gets nothing more.
 */
export async function* runIngestPipeline<M>(
  requests: AsyncIterable<M>,
  options: Pick<StreamOptions, "signal" | "shutdownSignal" | "expirySignal">,
  steps: IngestPipelineSteps<M>,
): AsyncGenerator<StreamAck, void, undefined> {
  const { signal, shutdownSignal, expirySignal } = options;
  type Entry = { readonly sequence: bigint; readonly result: Promise<IngestResult> } | { readonly error: unknown };
  const queue: Entry[] = [];
  let readerDone = false;
  // Set when the stream must not decide any more batches: a failure, an error, or the end.
  let halted = false;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  let room: (() => void) | undefined;
  const freeRoom = (): void => {
    const r = room;
    room = undefined;
    r?.();
  };
  const halt = (): void => {
    halted = true;
    freeRoom();
  };

  const read = async (): Promise<void> => {
    const it = requests[Symbol.asyncIterator]();
    let nextRows = 1;
    try {
      for (;;) {
        while (queue.length >= steps.maxInFlight && !halted) {
          await new Promise<void>((resolve) => (room = resolve));
        }
        if (halted) break;
        await steps.writer.whenWritable?.(nextRows, signal);
        if (halted) break;
        const next = await it.next();
        if (next.done === true || halted) break;
        const { sequence, samples, result } = steps.start(next.value, halt);
        result.catch(noop); // read by the writer loop below, or nobody once the client is gone
        queue.push({ sequence, result });
        // At most as many rows as this message had samples: wait for that much room.
        nextRows = samples;
        notify();
      }
      // No it.return(): it would reset the HTTP/2 stream before the final status is written.
      // Not reading is enough: flow control stops the device until the call ends.
    } catch (err) {
      // An abort is the end of the call, not a fault of the device: nobody to tell.
      if (!signal.aborted) queue.push({ error: err });
      halted = true;
    } finally {
      readerDone = true;
      notify();
    }
  };

  // Set when the token expired before the client finished sending: what it had not sent yet
  // was never read, so the stream must not end as if it were complete.
  let cutByExpiry = false;
  const onExpiry = (): void => {
    if (readerDone) return;
    cutByExpiry = true;
    halted = true;
    freeRoom();
    notify();
  };
  if (expirySignal?.aborted === true) onExpiry();
  else expirySignal?.addEventListener("abort", onExpiry, { once: true });

  const shuttingDown = (): boolean => shutdownSignal?.aborted === true;
  // A cancelled client gets nothing more; a server shutdown still acknowledges what was taken.
  const cancelled = (): boolean => signal.aborted && !shuttingDown();

  void read();
  try {
    for (;;) {
      if (signal.aborted) {
        halted = true;
        freeRoom();
        if (cancelled()) throw ConnectError.from(signal.reason ?? "stream cancelled", Code.Canceled);
      }
      const head = queue[0];
      if (head === undefined) {
        // The reader may be parked on the client's next message, which it will never take now.
        if (readerDone || (halted && (shuttingDown() || cutByExpiry))) break;
        await settledOrAborted(new Promise<void>((resolve) => (wake = resolve)), signal);
        continue;
      }
      if ("error" in head) throw head.error;
      const result = await (shuttingDown() ? head.result : settledOrAborted(head.result, signal));
      if (result === undefined) continue; // aborted while waiting: decided at the top
      queue.shift();
      freeRoom();
      yield { sequence: head.sequence, counts: result.counts, rejections: result.rejections };
    }
    if (shuttingDown()) {
      throw new ConnectError(
        "server is shutting down: acknowledged batches are stored; reconnect and resend the others",
        Code.Unavailable,
      );
    }
    if (cutByExpiry) throw ConnectError.from(expirySignal?.reason, Code.Unauthenticated);
  } finally {
    expirySignal?.removeEventListener("abort", onExpiry);
    halted = true;
    freeRoom();
    steps.end();
  }
}

/**
 * Settles as `promise` does, or with `undefined` once `signal` aborts, whichever comes first.
 * Not `Promise.race` with a promise of the abort: a stream waits once per batch for as long as it
 * lives, and every race against one pending promise leaves a reaction on it until the stream
 * ends, so a long stream's memory would grow with every batch (docs/BENCHMARKS.md, "Tried and
 * rejected"). This leaves nothing behind.
 */
function settledOrAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
