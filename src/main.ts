/**
 * Command-line entry: `serve` (default) runs the server; `migrate` applies pending migrations and
 * exits; `migration:create NAME` writes a new migration from the entity/database difference.
 */
import { ConfigError, loadConfig, type Config } from "./config.js";
import { openDatabase } from "./db/database.js";
import { MIGRATIONS_PATH } from "./db/orm.js";
import { buildServer } from "./server/build-server.js";
import { announceFirstStart, runTokenCommand, TOKEN_USAGE } from "./auth/token-command.js";
import { ROLLUP_COMMANDS_USAGE, runRebuildCommand, runRetentionCommand, UsageError } from "./queries/rollup-commands.js";
import { createLogger, errorFields, type Logger } from "./util/logger.js";

const USAGE = `usage: analytics <command>
  serve                     run the server (default)
  migrate                   apply pending database migrations and exit
  migration:create NAME     write a migration for the difference between entities and database
${TOKEN_USAGE}
${ROLLUP_COMMANDS_USAGE}`;

async function serve(config: Config, log: Logger): Promise<void> {
  await announceFirstStart(config, (text) => process.stdout.write(text));
  const server = await buildServer(config, { log });
  await server.listen();
  log.info(`ready at ${server.url()}`);
  let signals = 0;
  const stop = (signal: string) => {
    signals++;
    if (signals > 1) {
      log.warn("second signal: exiting now", { signal });
      process.exit(1);
    }
    log.info("signal received", { signal });
    server.close().then(
      () => process.exit(0),
      (err) => {
        log.error("shutdown failed", errorFields(err));
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

async function migrate(config: Config, log: Logger): Promise<void> {
  const db = await openDatabase({ ...config, migrateOnStart: true }, log);
  await db.close();
  log.info("database is up to date");
}

async function createMigration(config: Config, log: Logger, name: string | undefined): Promise<void> {
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

async function main(argv: string[]): Promise<void> {
  const [command = "serve", ...args] = argv;
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
  const log = createLogger(config.logLevel);
  switch (command) {
    case "serve":
      return serve(config, log);
    case "migrate":
      return migrate(config, log);
    case "migration:create":
      return createMigration(config, log, args[0]);
    case "token":
      try {
        return await runTokenCommand(config, args, (t) => process.stdout.write(t), (t) => process.stderr.write(t));
      } catch (err) {
        process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
        process.exit(2);
      }
    case "rollups:rebuild":
    case "retention:run":
      try {
        const run = command === "rollups:rebuild" ? runRebuildCommand : runRetentionCommand;
        return await run(config, log, args, (t) => process.stdout.write(t));
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
        process.exit(2);
      }
    case "help":
    case "--help":
      process.stdout.write(USAGE + "\n");
      return;
    default:
      process.stderr.write(`unknown command ${JSON.stringify(command)}\n${USAGE}\n`);
      process.exit(2);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const log = createLogger("info");
  log.error(err instanceof ConfigError ? err.message : "fatal error", errorFields(err));
  process.exit(1);
});
