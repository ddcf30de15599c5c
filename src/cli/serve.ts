/**
 * The `serve` CLI command (the default): runs the server until SIGTERM or SIGINT, then shuts down
 * gracefully; a second signal exits at once.
 */
import type { Config } from "../config.js";
import { buildServer } from "../server/build-server.js";
import { errorFields, type Logger } from "../util/logger.js";
import { announceFirstStart } from "./token.js";

/** Usage line for the main CLI's help. */
export const SERVE_USAGE = "  serve                     run the server (default)";

/** `serve`: builds the server, listens, and stops on the first signal. */
export async function runServeCommand(config: Config, log: Logger): Promise<void> {
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
