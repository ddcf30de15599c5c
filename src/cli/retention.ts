/**
 * The `retention:run` CLI command: opens the database the server would (migrating it first), runs
 * retention once with the configured settings, prints a JSON summary on stdout and leaves logs on
 * stderr.
 */
import { parseArgs } from "node:util";
import type { Config } from "../config.js";
import { openDatabase } from "../db/database.js";
import { createSqlPool } from "../db/sql-runner.js";
import { runRetention } from "../rollups/retention.js";
import type { Logger } from "../util/logger.js";
import { usage, type Write } from "./usage.js";

/** Usage line for the main CLI's help. */
export const RETENTION_USAGE = "  retention:run             delete raw rows and rollups older than their retention, then exit";

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
