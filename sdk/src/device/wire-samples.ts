/**
 * How the device streamer puts a batch of samples on the wire. Pure.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { SampleColumnsSchema, type MetricSample, type SampleColumns } from "../gen/analytics/v1/analytics_service_pb.js";

/** The sample fields of one `StreamDeviceMetricsRequest`: exactly one of the two is filled. */
export interface WireSamples {
  /** The map form: one `MetricSample` message per sample; empty when `columns` is set. */
  readonly samples: MetricSample[];
  /** The columnar form, when every sample has the same metrics. */
  readonly columns?: SampleColumns;
}

/** Offsets are `uint32` milliseconds after the base time. */
const MAX_OFFSET_MS = 0xffff_ffff;

/**
 * The epoch millisecond the server stores a sample under (as it computes it from a Timestamp), or
 * undefined when the time is missing or malformed: the server must then see the sample as it is,
 * to reject it with the same answer.
 */
function storedMs(ts: Timestamp | undefined): number | undefined {
  if (ts === undefined || !Number.isInteger(ts.nanos) || ts.nanos < 0 || ts.nanos > 999_999_999) return undefined;
  const ms = Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/**
 * The samples of one message on the wire. When every sample carries the same metric names and a
 * well-formed time, and they span less than 2^32 ms, the columnar form (`columns`: the names once,
 * the earliest time as the base, packed millisecond offsets, values row by row): no message per
 * sample, a fraction of the map form's CPU to encode here and to decode on the server, and of its
 * bytes. Otherwise the map form, unchanged. Either way the server stores and answers the same:
 * it keeps times to the millisecond, which is all the offsets hold.
 */
export function wireSamples(samples: readonly MetricSample[]): WireSamples {
  const mapForm: WireSamples = { samples: [...samples] };
  if (samples.length === 0) return mapForm;
  const names = Object.keys(samples[0]!.metrics);
  if (names.length === 0) return mapForm;
  const times = new Array<number>(samples.length);
  let baseMs = Number.POSITIVE_INFINITY;
  let lastMs = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    const keys = Object.keys(s.metrics);
    if (keys.length !== names.length || !names.every((n) => Object.hasOwn(s.metrics, n))) return mapForm;
    const ms = storedMs(s.occurredAt);
    if (ms === undefined) return mapForm;
    times[i] = ms;
    if (ms < baseMs) baseMs = ms;
    if (ms > lastMs) lastMs = ms;
  }
  if (lastMs - baseMs > MAX_OFFSET_MS) return mapForm;

  const values = new Array<number>(samples.length * names.length);
  for (let i = 0; i < samples.length; i++) {
    const metrics = samples[i]!.metrics;
    for (let j = 0; j < names.length; j++) values[i * names.length + j] = metrics[names[j]!]!;
  }
  const seconds = Math.floor(baseMs / 1000);
  const columns = create(SampleColumnsSchema, {
    metricNames: names,
    baseTime: { seconds: BigInt(seconds), nanos: (baseMs - seconds * 1000) * 1_000_000 },
    offsetsMs: times.map((ms) => ms - baseMs),
    values,
  });
  return { samples: [], columns };
}
