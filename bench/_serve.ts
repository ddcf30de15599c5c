/**
 * One benchmark server in a process of its own (`startServerProcess`), run with the flags
 * `npm start` gives the service: what it measures is the service as deployed, one server per
 * process, not sharing a heap (and its garbage collections) with the benchmark's baseline work
 * or with a second server.
 *
 * Argument: a JSON object `{ name, databaseUrl, config, options }`. Prints one JSON line
 * `{ url, token, pid }` once listening; closes the server and exits on SIGTERM.
 */
import { serviceToken, startBenchServer } from "./_server.js";

const { name, databaseUrl, config, options } = JSON.parse(process.argv[2]!) as {
  name: string;
  databaseUrl: string;
  config: Record<string, unknown>;
  options: Record<string, unknown>;
};
const bench = await startBenchServer(name, config, { ...options, databaseUrl });
const token = await serviceToken(bench.server);
console.log(JSON.stringify({ url: bench.server.url(), token, pid: process.pid }));
process.once("SIGTERM", () => {
  void bench.close().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
});
