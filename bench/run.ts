/**
 * Benchmark runner: `npm run bench -- NAME [args...]` runs `bench/NAME.ts`, which prints its
 * figures as a JSON object on its last line. Benchmarks are programs, not tests: each compares
 * against a baseline measured in the same run, because these machines are shared and noisy.
 * `npm run bench` starts Node with the flags `npm start` gives the server (a 64 MiB young
 * generation), so servers run in-process are tuned as in production.
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts" && !f.startsWith("_"))
  .map((f) => f.slice(0, -3));
const name = process.argv[2];
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- NAME [args]\navailable: ${available.join(", ")}`);
  process.exit(2);
}
// Leave only the benchmark's own arguments for it to parse.
process.argv.splice(2, 1);
await import(pathToFileURL(join(here, `${name}.ts`)).href);
