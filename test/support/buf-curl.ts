/**
 * `buf curl` as the README runs it against this server: gRPC over cleartext HTTP/2 (prior
 * knowledge). Used by the tests that check what an admin at a shell sees.
 */
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const buf = join(dirname(fileURLToPath(import.meta.url)), "../../node_modules/.bin/buf");

/**
 * Runs `buf curl --http2-prior-knowledge --protocol grpc ...args`. Resolves with its output;
 * rejects as `execFile` does (the error carries `stdout` and `stderr`) when buf exits non-zero.
 */
export function bufCurl(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(buf, ["curl", "--http2-prior-knowledge", "--protocol", "grpc", ...args], { timeout: 30_000 });
}
