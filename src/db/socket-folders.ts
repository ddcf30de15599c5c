/**
 * The folders the embedded PostgreSQL's Unix sockets go in (`embedded-postgres.ts`), and their
 * permissions: PGlite has no authentication, so a folder of mode 0700 owned by this user is what
 * keeps other local users from its socket, and the socket path must fit the ~104-byte `sun_path`.
 */
import { lstat, chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The port in the URL: for a Unix socket it only names the file, `.s.PGSQL.<port>`. */
export const SOCKET_PORT = 5432;
/**
 * Longest socket path used, in bytes: `sun_path` holds 108 bytes on Linux and 104 on macOS, the
 * terminating NUL included.
 */
const MAX_SOCKET_PATH_BYTES = 103;

/** A socket path only this process can reach, so nothing bypasses the session queue. */
export async function privateSocketPath(): Promise<{ path: string; remove: () => Promise<void> }> {
  // mkdtemp makes the folder 0700; a short base keeps the path under the 104-byte sun_path limit.
  const dir = await mkdtemp(join(tmpdir(), "pglite-"));
  return { path: join(dir, ".s.PGSQL.5432"), remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * The folder the public socket goes in: `<root>/socket`, mode 0700, or a fresh 0700 folder under
 * the OS temporary folder when the socket path would be too long (`inTmp`; removed at stop).
 *
 * @throws Error when `<root>/socket` is not a folder owned by this user (it is then not ours to
 *   trust, or to change the mode of).
 */
export async function publicSocketFolder(root: string): Promise<{ dir: string; inTmp: boolean; remove: () => Promise<void> }> {
  const dir = join(root, "socket");
  if (Buffer.byteLength(join(dir, `.s.PGSQL.${SOCKET_PORT}`)) > MAX_SOCKET_PATH_BYTES) {
    const tmp = await mkdtemp(join(tmpdir(), "analytics-pg-"));
    return { dir: tmp, inTmp: true, remove: () => rm(tmp, { recursive: true, force: true }) };
  }
  await mkdir(dir, { mode: 0o700, recursive: true });
  const stat = await lstat(dir);
  if (!stat.isDirectory() || (process.getuid !== undefined && stat.uid !== process.getuid())) {
    throw new Error(`${dir} must be a folder owned by this user: the embedded PostgreSQL's socket goes in it`);
  }
  // mkdir leaves an existing folder's mode as it was, and a new one's is cut by the umask.
  if ((stat.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
  return { dir, inTmp: false, remove: async () => {} };
}
