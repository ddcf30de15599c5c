/**
 * The `migrate` and `migration:create NAME` CLI commands: apply pending migrations and exit, or
 * write a new migration from the entity/database difference.
 */
import { ConfigError, type Config } from "../config.js";
import { openDatabase } from "../db/database.js";
import { MIGRATIONS_PATH } from "../db/orm.js";
import type { Logger } from "../util/logger.js";

/** Usage lines for the main CLI's help. */
export const MIGRATE_USAGE = [
  "  migrate                   apply pending database migrations and exit",
  "  migration:create NAME     write a migration for the difference between entities and database",
].join("\n");

/** `migrate`: applies pending migrations and exits. */
export async function runMigrateCommand(config: Config, log: Logger): Promise<void> {
  const db = await openDatabase({ ...config, migrateOnStart: true }, log);
  await db.close();
  log.info("database is up to date");
}

/** `migration:create NAME`: writes a migration for the difference between entities and database. */
export async function runCreateMigrationCommand(config: Config, log: Logger, name: string | undefined): Promise<void> {
  if (!name) throw new ConfigError("migration:create needs a NAME");
  const db = await openDatabase({ ...config, migrateOnStart: true }, log);
  try {
    const result = await db.orm.getMigrator().createMigration(MIGRATIONS_PATH, false, false, name);
    if (result.diff.up.length === 0) log.info("no schema changes: nothing written");
    else log.info(`wrote ${MIGRATIONS_PATH}/${result.fileName}: add it to ${MIGRATIONS_PATH}/index.ts`);
  } finally {
    await db.close();
  }
}
