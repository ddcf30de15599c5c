/**
 * The batch writer's bounded buffer: a row as it waits for its flush (its column values already
 * encoded, its estimated size), the durable write it answers to, and the accounting that keeps
 * buffered plus in-flight rows and bytes under the caps, with the waiters that push back on
 * streams until there is room again. Apart from the flush code so that one place counts what
 * comes in and goes out: every row added here is released here, stored or failed.
 */
import { JsonText, wellFormedJson } from "../util/json-text.js";
import type { BatchWriterOptions, Row, RowResult, WriterStats } from "./writer-types.js";
import type { TableSpec } from "./table-specs.js";

/**
 * A share of the buffer caps that some fire-and-forget rows may fill together, so that rows
 * anyone can cause (the request-log rows of unauthenticated calls) never take the room durable
 * writes need. Offered through it (`BatchWriter.offer`), rows over the share are dropped and
 * counted (`shedOffers`); its counts fall as its rows are flushed.
 */
export class OfferShare {
  /** Rows of this share buffered or being flushed now. */
  rows = 0;
  /** Their estimated bytes. */
  bytes = 0;

  /**
   * @param fraction - of `maxBufferedRows` and of `maxBufferedBytes`, from 0 (every row
   *   dropped) to 1 (no more limited than any offered row).
   * @throws RangeError when `fraction` is not in [0, 1].
   */
  constructor(readonly fraction: number) {
    if (!(fraction >= 0 && fraction <= 1)) throw new RangeError(`an offer share must be from 0 to 1 (got ${fraction})`);
  }
}

/**
 * Whether one more row fits in `share` under the caps (pure): rows as a count, bytes as the
 * buffer's own cap does (room while under it).
 */
export function fitsShare(
  share: Pick<OfferShare, "rows" | "bytes" | "fraction">,
  caps: Pick<BatchWriterOptions, "maxBufferedRows" | "maxBufferedBytes">,
): boolean {
  return share.rows + 1 <= Math.floor(caps.maxBufferedRows * share.fraction) && share.bytes < caps.maxBufferedBytes * share.fraction;
}

/**
 * The rows of one durable `write()` call, answered together: one promise per call rather than
 * a promise, two closures and `Promise.all` per row (a device stream stores ~100k rows/s:
 * docs/BENCHMARKS.md#measured-choices-in-the-code).
 */
export class WriteGroup {
  readonly #results: RowResult[];
  #left: number;
  #failed = false;
  #failure: unknown;
  readonly #resolve: (results: RowResult[]) => void;
  readonly #reject: (err: unknown) => void;

  constructor(rows: number, resolve: (results: RowResult[]) => void, reject: (err: unknown) => void) {
    this.#results = new Array<RowResult>(rows);
    this.#left = rows;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  /** Row `index` is stored (or replayed): the call resolves when every row is. */
  resolve(index: number, result: RowResult): void {
    this.#results[index] = result;
    this.#settleOne();
  }

  /**
   * A row failed: the call fails with the first failure, once every row of it is settled, so a
   * caller told of a failure knows that the rest of its rows are stored or failed too (none is
   * still on its way to the database, racing a retry).
   */
  reject(err: unknown): void {
    if (!this.#failed) {
      this.#failed = true;
      this.#failure = err;
    }
    this.#settleOne();
  }

  #settleOne(): void {
    if (--this.#left !== 0) return;
    if (this.#failed) this.#reject(this.#failure);
    else this.#resolve(this.#results);
  }
}

/** A buffered row, from its write until its flush stores or fails it. */
export interface Pending {
  readonly row: Row;
  /** The row's column values in the table's column order, JSON columns as text. */
  readonly values: unknown[];
  readonly bytes: number;
  readonly enqueuedAt: number;
  /** The durable write this row belongs to; none for offered (fire-and-forget) rows. */
  readonly settle: WriteGroup | undefined;
  /** The row's index in its write. */
  readonly index: number;
  /** The share an offered row counts against, if any. */
  readonly share: OfferShare | undefined;
}

/** Rough in-memory size of a value, for the byte cap (exactness is not needed, boundedness is). */
function sizeOf(v: unknown): number {
  if (v === null || v === undefined) return 1;
  if (typeof v === "string") return 16 + v.length * 2;
  return 16;
}

/**
 * Counts buffered and in-flight rows and bytes against the caps, in the writer's counters
 * (`bufferedRows`, `bufferedBytes`) and in each row's {@link OfferShare}, and wakes the callers
 * waiting for room as rows leave.
 */
export class WriteBuffer {
  readonly #caps: Pick<BatchWriterOptions, "maxBufferedRows" | "maxBufferedBytes">;
  readonly #stats: WriterStats;
  #capacityWaiters: { rows: number; resolve(): void }[] = [];

  /**
   * @param caps - the writer's options (read at each check).
   * @param stats - the writer's counters, whose `bufferedRows` and `bufferedBytes` this keeps.
   */
  constructor(caps: Pick<BatchWriterOptions, "maxBufferedRows" | "maxBufferedBytes">, stats: WriterStats) {
    this.#caps = caps;
    this.#stats = stats;
  }

  /** True when `rows` more rows fit under the caps. */
  hasRoom(rows = 1): boolean {
    return this.#stats.bufferedRows + rows <= this.#caps.maxBufferedRows && this.#stats.bufferedBytes < this.#caps.maxBufferedBytes;
  }

  /**
   * Encodes `row` for `spec` (defaults filled in, JSON columns as text), appends it to `entries`
   * and counts it. The caller has checked {@link hasRoom}.
   */
  add(
    entries: Pending[],
    spec: TableSpec,
    row: Row,
    now: number,
    settle: WriteGroup | undefined,
    index: number,
    share?: OfferShare,
  ): void {
    const cols = spec.columns;
    const values = new Array<unknown>(cols.length);
    let bytes = 64;
    for (let i = 0; i < cols.length; i++) {
      const col = cols[i]!;
      let v = row[col.name];
      if (v === undefined) v = col.fallback;
      if (col.json && v !== null && v !== undefined) v = v instanceof JsonText ? v.text : wellFormedJson(JSON.stringify(v));
      values[i] = v;
      bytes += sizeOf(v);
    }
    entries.push({ row, values, bytes, enqueuedAt: now, settle, index, share });
    this.#stats.bufferedRows++;
    this.#stats.bufferedBytes += bytes;
    if (share !== undefined) {
      share.rows++;
      share.bytes += bytes;
    }
  }

  /** Uncounts `entries` (stored, failed or dropped) and wakes the waiters that now fit. */
  release(entries: readonly Pending[]): void {
    for (const e of entries) {
      this.#stats.bufferedRows--;
      this.#stats.bufferedBytes -= e.bytes;
      if (e.share !== undefined) {
        e.share.rows--;
        e.share.bytes -= e.bytes;
      }
    }
    if (this.#capacityWaiters.length === 0) return;
    const waiting = this.#capacityWaiters;
    this.#capacityWaiters = [];
    for (const w of waiting) {
      if (this.hasRoom(w.rows)) w.resolve();
      else this.#capacityWaiters.push(w);
    }
  }

  /** Resolves when `rows` more rows fit (at once if they do); rejects if `signal` aborts. */
  whenWritable(rows: number, signal?: AbortSignal): Promise<void> {
    // A request bigger than the whole cap would never fit: let it through when the buffer is empty.
    const need = Math.min(rows, this.#caps.maxBufferedRows);
    if (this.hasRoom(need)) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        rows: need,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#capacityWaiters = this.#capacityWaiters.filter((w) => w !== waiter);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#capacityWaiters.push(waiter);
    });
  }
}
