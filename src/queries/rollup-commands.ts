/**
 * The `rollups:rebuild` and `retention:run` CLI commands. Both open the database the server would
 * (migrating it first), print a JSON summary on stdout and leave logs on stderr.
 */
import { parseArgs } from "node:util";
import type { Config } from "../config.js";
import { openDatabase } from "../db/database.js";
import { runRetention } from "../rollups/retention.js";
import type { Logger } from "../util/logger.js";
import { rebuildRollups, type RollupFamily } from "../rollups/rollups.js";
import { createSqlPool } from "../db/sql-runner.js";

/** Usage lines for the main CLI's help. */
export const ROLLUP_COMMANDS_USAGE = [
  "  rollups:rebuild [--from ISO] [--to ISO] [--chunk-hours N] [--only api|errors|jobs]",
  "                            recompute rollups from raw rows (default: all hours with data)",
  "  retention:run             delete raw rows and rollups older than their retention, then exit",
].join("\n");

type Write = (text: string) => void;

/** Bad command-line arguments (the CLI prints it with the usage and exits 2). */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Runs `fn` (argument parsing), turning its errors into {@link UsageError}. */
function usage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

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

/** `retention:run`: one retention run with the configured settings. */
export async function runRetentionCommand(config: Config, log: Logger, args: string[], out: Write): Promise<void> {
  usage(() => parseArgs({ args, options: {}, strict: true }));
  const db = await openDatabase({ ...config, migrateOnStart: true }, log);
  try {
    const report = await runRetention(createSqlPool(db.orm.em), {
      nowMs: Date.now(),
      retentionDays: config.retentionDays,
      rollupRetentionDays: config.rollupRetentionDays,
      batchSize: config.retentionBatchSize,
      log,
    });
    out(
      JSON.stringify({
        rawCutoff: new Date(report.rawCutoffMs).toISOString(),
        rollupCutoff: new Date(report.rollupCutoffMs).toISOString(),
        deleted: report.deleted,
      }) + "\n",
    );
  } finally {
    await db.close();
  }
}
