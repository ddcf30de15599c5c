import { openDatabase } from "../src/db/database.js";
import { loadConfig } from "../src/config.js";
import { BatchWriter, ormConnectionSource, type Row } from "../src/storage/batch-writer.js";
import { tableSpecs } from "../src/storage/table-specs.js";
import { insertStatements } from "../src/storage/insert-sql.js";
import { silentLogger } from "../src/util/logger.js";
import { benchDatabase, copyRowsPerSecond } from "./_support.js";
const bench = await benchDatabase("scratchw");
const db = await openDatabase({ ...loadConfig({}), databaseUrl: bench.url }, silentLogger);
const NAMES = ["cpu","mem","disk","net_in","net_out","temperature","error_rate","queue_depth","latency_p50","latency_p99"];
const start = Date.now() - 30 * 86400_000;
const N = 100_000;
const rows: Row[] = Array.from({ length: N }, (_, n) => ({ device_id: "dev-" + (n % 10), occurred_at: new Date(start + n * 1000), metrics: Object.fromEntries(NAMES.map((k, m) => [k, (m + 1) * 100 + Math.random()])), reason: "significant_change" }));
const truncate = () => db.orm.em.fork().getConnection().execute(`truncate device_metrics`);
const spec = tableSpecs(db.orm).device_metrics;
const source = ormConnectionSource(db.orm.em);
for (let r = 0; r < 2; r++) {
  await truncate();
  const copy = await copyRowsPerSecond(bench.url, "device_metrics", ["device_id", "occurred_at", "metrics", "reason"], rows.map((x) => [x.device_id, x.occurred_at, x.metrics, x.reason]));
  await truncate();
  // raw unnest insert, 1000-row statements, one connection
  const values = rows.map((x) => spec.columns.map((c) => (c.json ? JSON.stringify(x[c.name]) : x[c.name])));
  const client = await source.acquire();
  let t0 = performance.now();
  for (let i = 0; i < N; i += 1000) { await client.query("begin"); for (const st of insertStatements(spec, values.slice(i, i + 1000), "unnest")) await client.query(st.sql, st.params); await client.query("commit"); }
  const unnest = N / ((performance.now() - t0) / 1000);
  await source.release(client);
  await truncate();
  for (const [label, batch] of [["writer 100-row writes x8", 100], ["writer 1000-row writes x8", 1000]] as const) {
    await truncate();
    const writer = new BatchWriter({ specs: tableSpecs(db.orm), source, log: silentLogger });
    t0 = performance.now();
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < N; i += batch) { const p = writer.write("device_metrics", rows.slice(i, i + batch)).finally(() => inFlight.delete(p)); inFlight.add(p); if (inFlight.size >= 8) await Promise.race(inFlight); }
    await Promise.all(inFlight);
    console.log(label, Math.round(N / ((performance.now() - t0) / 1000)));
    await writer.close();
  }
  console.log("copy", Math.round(copy), "unnest raw", Math.round(unnest));
}
await db.close(); await bench.drop();
