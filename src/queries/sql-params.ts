/** Collects `$n` parameters while a statement is built. */
export class Params {
  readonly values: unknown[] = [];
  /** Adds a value; returns its placeholder. */
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
  /** A timestamp in ms as a `timestamptz` placeholder. */
  time(ms: number): string {
    return `${this.add(new Date(ms).toISOString())}::timestamptz`;
  }
}
