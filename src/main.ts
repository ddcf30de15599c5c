/**
 * Command-line entry: reads the configuration once and dispatches to a command in `src/cli/`:
 * `serve` (default), `migrate`, `migration:create NAME`, `token`, `rollups:rebuild`,
 * `retention:run`.
 */
import { ConfigError, loadConfig, type Config } from "./config.js";
import { MIGRATE_USAGE, runCreateMigrationCommand, runMigrateCommand } from "./cli/migrate.js";
import { RETENTION_USAGE, runRetentionCommand } from "./cli/retention.js";
import { ROLLUPS_USAGE, runRebuildCommand } from "./cli/rollups.js";
import { runServeCommand, SERVE_USAGE } from "./cli/serve.js";
import { runTokenCommand, TOKEN_USAGE } from "./cli/token.js";
import { UsageError } from "./cli/usage.js";
import { createLogger, errorFields } from "./util/logger.js";

const USAGE = `usage: analytics <command>
${SERVE_USAGE}
${MIGRATE_USAGE}
${TOKEN_USAGE}
${ROLLUPS_USAGE}
${RETENTION_USAGE}`;

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
      return runServeCommand(config, log);
    case "migrate":
      return runMigrateCommand(config, log);
    case "migration:create":
      return runCreateMigrationCommand(config, log, args[0]);
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
