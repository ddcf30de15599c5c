/**
 * The compact sample form (`metric_names` on the request, `values` on each sample) turned into the
 * `metrics` map the rest of the ingest reads. Pure; it fills `metrics` in place, because the
 * decoded message is ours and copying a thousand samples per message would cost more than the
 * compact form saves.
 */
import type { MetricSample } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import type { Violation } from "../validation/field-rules.js";
import { repeatedName } from "./sample-fields.js";

/**
 * Expands compact samples of one message. Returns the violations of a malformed message (names
 * repeated, a sample with values but no names, a value count that differs from the name count, a
 * sample with both forms); the message is then rejected as a whole, since it is a device bug,
 * not bad data.
 */
export function expandCompactSamples(metricNames: readonly string[], samples: readonly MetricSample[]): Violation[] {
  const violations: Violation[] = [];
  const repeated = repeatedName(metricNames);
  if (repeated !== undefined) {
    violations.push({ field: "metric_names", description: `names "${repeated}" more than once` });
    return violations;
  }
  for (let i = 0; i < samples.length; i++) {
    const sample = samples[i]!;
    const values = sample.values;
    if (values.length === 0) continue;
    if (metricNames.length === 0) {
      violations.push({ field: `samples[${i}].values`, description: "needs the request's metric_names" });
    } else if (values.length !== metricNames.length) {
      violations.push({ field: `samples[${i}].values`, description: `must hold one value per metric name (${metricNames.length}, got ${values.length})` });
    } else if (Object.keys(sample.metrics).length > 0) {
      violations.push({ field: `samples[${i}]`, description: "must carry metrics or values, not both" });
    } else {
      // A null-prototype object: a metric called "__proto__" stays a metric.
      const metrics: Record<string, number> = Object.create(null);
      for (let j = 0; j < values.length; j++) metrics[metricNames[j]!] = values[j]!;
      sample.metrics = metrics;
    }
    if (violations.length >= 10) break; // enough to fix the device; the message is rejected anyway
  }
  return violations;
}
