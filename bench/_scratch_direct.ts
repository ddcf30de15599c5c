import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import { StreamDeviceMetricsRequestSchema } from "../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { openDatabase } from "../src/db/database.js";
import { loadConfig } from "../src/config.js";
import { BatchWriter, ormConnectionSource } from "../src/storage/batch-writer.js";
import { tableSpecs } from "../src/storage/table-specs.js";
import { DeviceMetricsIngest } from "../src/metrics/device-metrics-ingest.js";
import { silentLogger } from "../src/util/logger.js";
import { benchDatabase } from "./_support.js";
const bench = await benchDatabase("scratch");
const db = await openDatabase({ ...loadConfig({}), databaseUrl: bench.url }, silentLogger);
const writer = new BatchWriter({ specs: tableSpecs(db.orm), source: ormConnectionSource(db.orm.em), log: silentLogger, options: { maxDelayMs: Number(process.env.DELAY ?? 5) } });
const NAMES = ["cpu","mem","disk","net_in","net_out","temperature","error_rate","queue_depth","latency_p50","latency_p99"];
const start = Date.now() - 30 * 86400_000;
function msgs(dev: string, stored: boolean) {
  const out = [];
  for (let b = 0; b < 2000; b++) {
    const samples = [];
    for (let i = 0; i < 100; i++) {
      const n = b * 100 + i; const metrics: Record<string, number> = {};
      NAMES.forEach((name, m) => (metrics[name] = name === "error_rate" ? 0.005 : name === "queue_depth" ? 0 : (m + 1) * 100 * (1 + (Math.random() - 0.5) * 0.02)));
      if (stored) metrics.cpu = n % 2 ? 100 : 150; else if (Math.random() < 0.02) metrics.mem = 5000;
      samples.push({ occurredAt: timestampFromMs(start + n * 1000), metrics });
    }
    out.push(create(StreamDeviceMetricsRequestSchema, { sequence: BigInt(b + 1), deviceId: dev, samples }));
  }
  return out;
}
const ingest = new DeviceMetricsIngest({ writer, log: silentLogger, limits: { maxInFlightBatches: Number(process.env.INFLIGHT ?? 8) } });
for (const [dev, stored] of [["a", false], ["b", true]] as const) {
  const m = msgs(dev, stored);
  async function* reqs() { yield* m; }
  const t0 = performance.now(); let n = 0, s = 0;
  for await (const ack of ingest.stream(reqs(), { signal: new AbortController().signal })) { n += ack.counts.received; s += ack.counts.stored; }
  const sec = (performance.now() - t0) / 1000;
  console.log(dev, "received/s", Math.round(n / sec), "stored/s", Math.round(s / sec), "stored", s);
}
await writer.close(); await db.close(); await bench.drop();
