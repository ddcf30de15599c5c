import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { openDatabase } from "../src/db/database.js";
import { loadConfig } from "../src/config.js";
import { silentLogger } from "../src/util/logger.js";
import { benchDatabase, copyRowsPerSecond } from "./_support.js";
const bench = await benchDatabase("scratchc");
const db = await openDatabase({ ...loadConfig({}), databaseUrl: bench.url }, silentLogger);
await db.close();
const NAMES = ["cpu","mem","disk","net_in","net_out","temperature","error_rate","queue_depth","latency_p50","latency_p99"];
const start = Date.now() - 30 * 86400_000;
const N = 100_000;
const rows = Array.from({ length: N }, (_, n) => ["dev-" + (n % 10), new Date(start + n * 1000), Object.fromEntries(NAMES.map((k, m) => [k, (m + 1) * 100 + Math.random()])), "significant_change"] as const);
const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n");
const c = new pg.Client({ connectionString: bench.url }); await c.connect();
for (let r = 0; r < 2; r++) {
  await c.query("truncate device_metrics");
  const copy = await copyRowsPerSecond(bench.url, "device_metrics", ["device_id", "occurred_at", "metrics", "reason"], rows as never);
  await c.query("truncate device_metrics");
  await c.query(`create temp table if not exists stage (device_id text, occurred_at timestamptz, metrics jsonb, reason text) on commit delete rows`);
  for (const [B, tail] of [[1000, " on conflict (device_id, occurred_at) do nothing returning device_id, (extract(epoch from occurred_at) * 1000)::float8 as occurred_at"], [1000, " on conflict (device_id, occurred_at) do nothing"], [1000, ""], [1000, "DIRECT"]] as const) {
    await c.query("truncate device_metrics");
    const t0 = performance.now();
    for (let i = 0; i < N; i += B) {
      await c.query("begin");
      const text = rows.slice(i, i + B).map((x) => `${esc(x[0])}\t${x[1].toISOString()}\t${esc(JSON.stringify(x[2]))}\t${x[3]}\n`).join("");
      if (tail === "DIRECT") { await pipeline(Readable.from([text]), c.query(copyFrom("copy device_metrics (device_id, occurred_at, metrics, reason) from stdin"))); } else {
      await pipeline(Readable.from([text]), c.query(copyFrom("copy stage from stdin")));
      await c.query(`insert into device_metrics (device_id, occurred_at, metrics, reason) select * from stage` + tail); }
      await c.query("commit");
    }
    console.log("B=" + B, JSON.stringify(tail.slice(0,40)), Math.round(N / ((performance.now() - t0) / 1000)), "vs copy", Math.round(copy));
  }
}
await c.end(); await bench.drop();
