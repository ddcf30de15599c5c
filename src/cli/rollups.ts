/**
 * The `rollups:rebuild` CLI command: opens the database the server would (migrating it first),
 * recomputes rollups from raw rows, prints a JSON summary on stdout and leaves logs on stderr.
 */
import { parseArgs } from "node:util";
import type { Config } from "../config.js";
import { openDatabase } from "../db/database.js";
import { createSqlPool } from "../db/sql-runner.js";
import { rebuildRollups } from "../rollups/rollup-rebuild.js";
import type { RollupFamily } from "../rollups/rollup-tables.js";
import type { Logger } from "../util/logger.js";
import { usage, UsageError, type Write } from "./usage.js";

/** Usage lines for the main CLI's help. */
export const ROLLUPS_USAGE = [
  "  rollups:rebuild [--from ISO] [--to ISO] [--chunk-hours N] [--only api|errors|jobs]",
  "                            recompute rollups from raw rows (default: all hours with data)",
].join("\n");

function parseTime(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const ms = Date.parse(raw);
  if (!Number.isFinite(ms)) throw new UsageError(`--${name} must be an ISO time such as 2026-01-31T00:00:00Z, got ${JSON.stringify(raw)}`);
  return ms;
}

/**
 * `rollups:rebuild [--from ISO] [--to ISO] [--chunk-hours N] [--only FAMILY]`.
 *
 * @throws UsageError on bad arguments.
 */
export async function runRebuildCommand(config: Config, log: Logger, args: string[], out: Write): Promise<void> {
  const { values } = usage(() =>
    parseArgs({
      args,
      options: {
        from: { type: "string" },
        to: { type: "string" },
        "chunk-hours": { type: "string", default: "1" },
        only: { type: "string", multiple: true },
      },
      strict: true,
    }),
  );
  const fromMs = parseTime("from", values.from);
  const toMs = parseTime("to", values.to);
  if (fromMs !== undefined && toMs !== undefined && fromMs >= toMs) throw new UsageError("--from must be before --to");
  const chunkHours = Number(values["chunk-hours"]);
  if (!Number.isInteger(chunkHours) || chunkHours < 1 || chunkHours > 24 * 31) throw new UsageError("--chunk-hours must be an integer from 1 to 744");
  const families = values.only as RollupFamily[] | undefined;
  for (const f of families ?? []) if (!["api", "errors", "jobs"].includes(f)) throw new UsageError(`--only must be api, errors or jobs, got ${JSON.stringify(f)}`);

  const db = await openDatabase({ ...config, migrateOnStart: true }, log);
  try {
    const started = Date.now();
    const result = await rebuildRollups(createSqlPool(db.orm.em), { fromMs, toMs, chunkHours, families, log });
    out(
      JSON.stringify({
        ms: Date.now() - started,
        rebuilt: result.map((r) => ({
          family: r.family,
          from: r.chunks > 0 ? new Date(r.fromMs).toISOString() : null,
          to: r.chunks > 0 ? new Date(r.toMs).toISOString() : null,
          chunks: r.chunks,
          ...(r.clippedToWatermarkMs === undefined ? {} : { skippedBeforeRetention: new Date(r.clippedToWatermarkMs).toISOString() }),
        })),
      }) + "\n",
    );
  } finally {
    await db.close();
  }
}
