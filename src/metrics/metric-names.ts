/**
 * The check of metric names the smart data filter (`smart-data-filter.ts`) rejects, and the
 * columnar form's names checked once for all its samples ({@link MetricNames}).
 *
 * Why apart from the rules: it is input validation, run before any rule, once per sample or
 * once per columnar message.
 *
 * @module
 */

/**
 * The metric names of many samples that share them (the columnar form), checked once by
 * `SmartDataFilter.metricNames` rather than once per sample.
 */
export interface MetricNames {
  /** The names, in the order of each sample's values. */
  readonly names: readonly string[];
  /**
   * Index of the first name the filter rejects (empty, or longer than `maxIdLength`), or -1. Each
   * sample is rejected for it when the sample gets that far, exactly as the map form would be.
   */
  readonly invalidAt: number;
  /** The options' `maxIdLength` the names were checked against. */
  readonly maxIdLength: number;
}

/** The names of a columnar message, checked against `maxIdLength` once, frozen. */
export function checkMetricNames(names: readonly string[], maxIdLength: number): MetricNames {
  const copy = Object.freeze([...names]);
  return Object.freeze({ names: copy, invalidAt: invalidNameAt(copy, maxIdLength), maxIdLength });
}

/**
 * Index of the first name `SmartDataFilter.decide` rejects (empty, or longer than
 * `maxIdLength`), or -1.
 */
export function invalidNameAt(names: readonly string[], maxIdLength: number): number {
  for (let j = 0; j < names.length; j++) {
    const name = names[j]!;
    // U+0000: the name is a key of the stored jsonb, which cannot hold it.
    if (name.length === 0 || name.length > maxIdLength || name.includes("\u0000")) return j;
  }
  return -1;
}
