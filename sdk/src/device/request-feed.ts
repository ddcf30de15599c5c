/**
 * The request side of one `StreamDeviceMetrics` stream, as the async iterable Connect reads from.
 * Its own module because it is a small protocol of its own (who counts a batch as sent, and when
 * the iteration ends), separate from the streamer's bookkeeping.
 *
 * @module
 */
import type { StreamDeviceMetricsRequest } from "../gen/analytics/v1/analytics_service_pb.js";

/**
 * The request side of one stream: batches pushed by the streamer, ended by it. A batch counts as
 * sent when the transport takes it. Connect calls `return`/`throw` when the call ends; both just
 * end the iteration.
 */
export class RequestFeed implements AsyncIterableIterator<StreamDeviceMetricsRequest> {
  readonly #buffer: { message: StreamDeviceMetricsRequest; taken: () => void }[] = [];
  #wake: ((r: IteratorResult<StreamDeviceMetricsRequest>) => void) | undefined;
  #done = false;

  /** Queues `message`; `taken` runs when the transport takes it (nothing happens once ended). */
  push(message: StreamDeviceMetricsRequest, taken: () => void): void {
    if (this.#done) return;
    const wake = this.#wake;
    if (wake) {
      this.#wake = undefined;
      taken();
      wake({ value: message, done: false });
    } else this.#buffer.push({ message, taken });
  }

  /** Ends the iteration once what is already queued has been taken; later pushes are ignored. */
  end(): void {
    this.#done = true;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<StreamDeviceMetricsRequest>> {
    const item = this.#buffer.shift();
    if (item !== undefined) {
      item.taken();
      return Promise.resolve({ value: item.message, done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.#wake = resolve));
  }

  return(): Promise<IteratorResult<StreamDeviceMetricsRequest>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(): Promise<IteratorResult<StreamDeviceMetricsRequest>> {
    return this.return();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
