/**
 * MikroORM set-up. The ORM owns the schema (entities + committed migrations) and the connection
 * pool; hot write paths use multi-row SQL through the same connection rather than the unit of work.
 */
import { MikroORM, type Options } from "@mikro-orm/core";
import { Migrator } from "@mikro-orm/migrations";
import { PostgreSqlDriver } from "@mikro-orm/postgresql";
import type { Logger } from "../util/logger.js";
import { ENTITIES } from "./entities/index.js";
import { MIGRATIONS } from "./migrations/index.js";

/** Where `migration:create` writes new migration files (relative to the repository root). */
export const MIGRATIONS_PATH = "src/db/migrations";

/** Options for {@link createOrm}. */
export interface OrmOptions {
  /** postgres:// URL. */
  readonly clientUrl: string;
  /** Pool size; 1 for the embedded database, which serves one connection. */
  readonly poolMax: number;
  /** Log SQL (debug). */
  readonly debug?: boolean;
  /**
   * Where the query builder's own warnings go (a pooled connection that broke, say). Without it
   * knex prints them as bare lines on stdout, which breaks the service's JSON log lines.
   */
  readonly log?: Logger;
}

/** The MikroORM configuration, shared by the server, the CLI and tests. */
export function ormOptions(options: OrmOptions): Options<PostgreSqlDriver> {
  return {
    driver: PostgreSqlDriver,
    clientUrl: options.clientUrl,
    entities: [...ENTITIES],
    pool: { min: 0, max: options.poolMax },
    debug: options.debug ?? false,
    // Entities are defined with defineEntity; nothing to discover from TypeScript metadata.
    discovery: { warnWhenNoEntities: false },
    extensions: [Migrator],
    migrations: {
      tableName: "mikro_orm_migrations",
      path: MIGRATIONS_PATH,
      pathTs: MIGRATIONS_PATH,
      emit: "ts",
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      silent: true,
      // An explicit list keeps migrations working wherever the code runs (no file globbing).
      migrationsList: [...MIGRATIONS],
    },
    // Timestamps are timestamptz and always UTC on the wire.
    forceUtcTimezone: true,
    ...(options.log && { driverOptions: { log: knexLog(options.log) } }),
    allowGlobalContext: false,
  };
}

/** knex's logger hooks, as fields of our structured log lines. */
function knexLog(log: Logger): Record<"warn" | "error" | "deprecate" | "debug", (message: unknown) => void> {
  const text = (message: unknown) => (typeof message === "string" ? message : JSON.stringify(message));
  return {
    warn: (m) => log.warn("database driver warning", { detail: text(m) }),
    error: (m) => log.error("database driver error", { detail: text(m) }),
    deprecate: (m) => log.debug("database driver deprecation", { detail: text(m) }),
    debug: (m) => log.debug("database driver", { detail: text(m) }),
  };
}

/** Connects the ORM. */
export async function createOrm(options: OrmOptions): Promise<MikroORM<PostgreSqlDriver>> {
  return MikroORM.init<PostgreSqlDriver>(ormOptions(options));
}

/** Applies pending migrations; returns the names of those applied. */
export async function migrateUp(orm: MikroORM<PostgreSqlDriver>): Promise<string[]> {
  const applied = await orm.getMigrator().up();
  return applied.map((m) => m.name);
}
