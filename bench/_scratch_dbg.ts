import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import { MetricSampleSchema } from "../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { DeviceMetricsIngest } from "../src/metrics/device-metrics-ingest.js";
import { silentLogger } from "../src/util/logger.js";
const NAMES = ["cpu","mem","disk","net_in","net_out","temperature","error_rate","queue_depth","latency_p50","latency_p99"];
const start = Date.now() - 30 * 86400_000;
const rows: unknown[] = [];
const ingest = new DeviceMetricsIngest({ writer: { async write(_t, r) { rows.push(...r); return r.map(() => ({ outcome: "stored" as const })); } }, log: silentLogger });
const samples = [];
for (let n = 0; n < 20; n++) { const metrics: Record<string, number> = {}; NAMES.forEach((name, m) => (metrics[name] = (m + 1) * 100 * (1 + (Math.random() - 0.5) * 0.02))); samples.push(create(MetricSampleSchema, { occurredAt: timestampFromMs(start + n * 1000), metrics })); }
console.log(await ingest.submit("a", samples), rows.map((r: any) => r.reason));
