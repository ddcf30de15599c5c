/**
 * The embedded PostgreSQL used when `DATABASE_URL` is unset: PGlite (PostgreSQL 18 compiled to
 * WASM) persisted in a data folder and served over the PostgreSQL wire protocol on a Unix socket,
 * so the service talks to it with the same `@mikro-orm/postgresql` driver (node-postgres) it uses
 * against a real server.
 *
 * Access. PGlite has one user, a superuser, and no authentication: whoever reaches the socket can
 * read and change everything, or hold its one session so every write of the service waits and
 * fails. So it is never served on a TCP port (any local user can reach loopback). The socket lives
 * in a folder of mode 0700 owned by this process's user (`<dataDir>/socket`, or a fresh 0700
 * folder under the OS temporary folder when that path would exceed the ~104-byte socket path
 * limit), so only that user (and root) can connect. Windows has no Unix sockets node-postgres can
 * use: there the embedded database refuses to start; set `DATABASE_URL`.
 *
 * Durability. PGlite's Node file system writes through to the data folder's files but never calls
 * fsync: a commit is in the operating system's page cache when it is acknowledged. It survives the
 * process being killed (`kill -9`, OOM) but not an operating-system crash or a power loss, which
 * can lose recent commits or, in the worst case, leave the folder unusable. A real PostgreSQL
 * server (`DATABASE_URL`) is what production uses.
 *
 * PGlite is a single backend: one session, one transaction state, one unnamed prepared statement.
 * pglite-socket 0.2.17 offers two ways to deal with a second connection, neither safe:
 * - `maxConnections: 1` (its default): Node drops the extra socket and the client sees
 *   "Connection terminated unexpectedly". A pool that closes a connection and opens the next one
 *   in the same breath races the server's own bookkeeping and fails the same way.
 * - `maxConnections: n`: it multiplexes connections per protocol *message*. Transactions are
 *   kept together, but the unnamed statement/portal and "skip until Sync after an error" state are
 *   shared, so a client whose Parse and Bind arrive in separate reads can bind another client's
 *   statement (reproduced with raw protocol writes).
 * So this module puts a session queue in front: the public socket admits one connection at a time
 * and pipes it to pglite-socket on a private Unix socket (in its own 0700 folder); the next
 * connection waits until the current one closes, or fails after `connectionWaitTimeoutMs` with
 * SQLSTATE 53300. Callers must still use a pool of max 1: a second concurrent connection does
 * not run in parallel, it only waits. A transaction left open by a closed connection is rolled
 * back before the next one runs; other session state (SET, temp tables, named prepared
 * statements) lives in the one backend and outlasts the connection that created it.
 */
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, link, lstat, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/** A running embedded PostgreSQL. */
export interface EmbeddedPostgres {
  /**
   * postgres:// URL for the driver: user and database `postgres`, no password, the socket folder
   * as the host (percent-encoded, as node-postgres and MikroORM read it) and port 5432 (which only
   * names the socket file `.s.PGSQL.5432`; nothing listens on a TCP port).
   */
  readonly url: string;
  /** Absolute path of the Unix socket clients connect to (inside a 0700 folder). */
  readonly socketPath: string;
  /** Absolute path of the folder PGlite persists to (`<dataDir>/pglite`). */
  readonly dataDir: string;
  /** Stops accepting connections, closes open ones, closes PGlite (flushing to disk) and releases the data folder. Idempotent. */
  stop(): Promise<void>;
}

/** Options for {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Folder for the database; PGlite's files go in `<dataDir>/pglite`, created if missing. */
  dataDir: string;
  /** How long a connection may wait for the one in use to close before it is refused (default 10 000 ms). */
  connectionWaitTimeoutMs?: number;
  /** Progress messages (start-up, address). */
  log?: (msg: string) => void;
}

const DEFAULT_CONNECTION_WAIT_TIMEOUT_MS = 10_000;
/** The port in the URL: for a Unix socket it only names the file, `.s.PGSQL.<port>`. */
const SOCKET_PORT = 5432;
/**
 * Longest socket path used, in bytes: `sun_path` holds 108 bytes on Linux and 104 on macOS, the
 * terminating NUL included.
 */
const MAX_SOCKET_PATH_BYTES = 103;
/** The session queue keeps one live connection; the slack absorbs connections still closing. */
const BACKEND_MAX_CONNECTIONS = 4;

/**
 * Starts PGlite on `<dataDir>/pglite` and serves it on a Unix socket only this user can reach (see
 * the module comment); resolves once connections are accepted.
 *
 * - One connection at a time: use a pool of max 1 (`pool: { min: 0, max: 1 }` in MikroORM). Extra
 *   connections wait for the current one to close (see the module comment).
 * - `COPY ... FROM STDIN` is not supported over the socket: the client gets FATAL 08P01 "protocol
 *   synchronization was lost" and the server then hangs every later query. Use multi-row
 *   `INSERT ... VALUES (...), (...)` with parameters (at most 65 535 per statement).
 * - Speed: see docs/BENCHMARKS.md#measured-choices-in-the-code (parameterised multi-row INSERTs).
 * - The first start on an empty folder runs initdb (~5 s); later starts take under a second.
 * - Only `plpgsql` is installed; `gen_random_uuid()` is built in, `pgcrypto`/`uuid-ossp` are not.
 *
 * Rejects if another process, or another instance in this process, holds the data folder: two
 * PGlite instances on one folder corrupt it. A lock left by a process that no longer runs is taken
 * over.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => {});
  if (process.platform === "win32") {
    throw new Error(
      "The embedded PostgreSQL is served only on a Unix socket (it has no authentication, so never on a TCP port), " +
        "which node-postgres cannot use on Windows: set DATABASE_URL to a PostgreSQL server.",
    );
  }
  const root = resolve(options.dataDir);
  const pgDir = join(root, "pglite");
  const lockPath = join(root, "pglite.lock");

  await mkdir(root, { recursive: true });
  await acquireLock(lockPath, pgDir);

  const cleanups: Array<() => Promise<void>> = [() => releaseLock(lockPath)];
  const runCleanups = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (err) {
        log(`embedded PostgreSQL: clean-up failed: ${errorMessage(err)}`);
      }
    }
  };

  try {
    await mkdir(pgDir, { recursive: true });
    const fresh = !existsSync(join(pgDir, "PG_VERSION"));
    log(
      fresh
        ? `embedded PostgreSQL: initialising a new database in ${pgDir} (takes a few seconds)`
        : `embedded PostgreSQL: opening ${pgDir}`,
    );
    const startedAt = Date.now();
    const db = await PGlite.create({ dataDir: pgDir });
    cleanups.push(() => db.close());
    await db.waitReady;

    const backendPath = await privateSocketPath();
    cleanups.push(backendPath.remove);
    const backend = new PGLiteSocketServer({ db, path: backendPath.path, maxConnections: BACKEND_MAX_CONNECTIONS });
    await backend.start();
    cleanups.push(() => backend.stop());

    const gate = new SessionGate(
      () => connect(backendPath.path),
      options.connectionWaitTimeoutMs ?? DEFAULT_CONNECTION_WAIT_TIMEOUT_MS,
    );
    const front = createServer((socket) => gate.accept(socket));
    const socket = await publicSocketFolder(root);
    cleanups.push(socket.remove);
    if (socket.inTmp) {
      log(`embedded PostgreSQL: the data folder's path is too long for a Unix socket; serving in ${socket.dir} (mode 0700) instead`);
    }
    const socketPath = join(socket.dir, `.s.PGSQL.${SOCKET_PORT}`);
    // We hold the data folder's lock: a socket file left here is from a process that is gone.
    await rm(socketPath, { force: true });
    await listen(front, socketPath);
    cleanups.push(async () => {
      const closed = new Promise<void>((done) => front.close(() => done()));
      gate.close();
      await closed;
    });

    const url = `postgres://postgres@${encodeURIComponent(socket.dir)}:${SOCKET_PORT}/postgres`;
    log(`embedded PostgreSQL: serving on Unix socket ${socketPath}, folder mode 0700 (ready in ${Date.now() - startedAt} ms)`);

    let stopping: Promise<void> | undefined;
    return {
      url,
      socketPath,
      dataDir: pgDir,
      stop() {
        stopping ??= runCleanups().then(() => log("embedded PostgreSQL: stopped"));
        return stopping;
      },
    };
  } catch (err) {
    await runCleanups();
    throw err;
  }
}

/**
 * Admits one client connection at a time, piping it to the backend; the others wait in order.
 * A waiting socket is not read from, so its startup message stays buffered until its turn.
 */
class SessionGate {
  readonly #connectBackend: () => Socket;
  readonly #waitTimeoutMs: number;
  readonly #waiting: Array<{ client: Socket; timer: NodeJS.Timeout }> = [];
  readonly #sockets = new Set<Socket>();
  #active: Socket | undefined;
  #closed = false;

  constructor(connectBackend: () => Socket, waitTimeoutMs: number) {
    this.#connectBackend = connectBackend;
    this.#waitTimeoutMs = waitTimeoutMs;
  }

  accept(client: Socket): void {
    if (this.#closed) {
      client.destroy();
      return;
    }
    this.#track(client);
    client.setNoDelay(true);
    if (this.#active === undefined) {
      this.#admit(client);
      return;
    }
    const timer = setTimeout(() => {
      this.#unqueue(client);
      client.end(
        errorResponse(
          "53300",
          `the embedded PostgreSQL serves one connection at a time and another one stayed open for ` +
            `${this.#waitTimeoutMs} ms: use a single connection (a pool of max 1) and close it when done`,
        ),
      );
    }, this.#waitTimeoutMs);
    this.#waiting.push({ client, timer });
    client.once("close", () => this.#unqueue(client));
  }

  /** Stops admitting and closes every connection. */
  close(): void {
    this.#closed = true;
    for (const { timer } of this.#waiting.splice(0)) clearTimeout(timer);
    for (const socket of this.#sockets) socket.destroy();
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    // Resets and broken pipes end the session through "close"; there is nobody to report them to.
    socket.on("error", () => {});
    socket.once("close", () => this.#sockets.delete(socket));
  }

  #unqueue(client: Socket): void {
    const i = this.#waiting.findIndex((w) => w.client === client);
    if (i === -1) return;
    const [entry] = this.#waiting.splice(i, 1);
    if (entry) clearTimeout(entry.timer);
  }

  #admit(client: Socket): void {
    this.#active = client;
    const backend = this.#connectBackend();
    this.#track(backend);
    backend.setNoDelay(true);
    let open = 2;
    const closed = (): void => {
      open -= 1;
      if (open > 0) return;
      this.#active = undefined;
      this.#admitNext();
    };
    let reached = false;
    backend.once("connect", () => {
      reached = true;
    });
    backend.once("error", (err) => {
      if (!reached && client.writable) {
        client.end(errorResponse("08006", `the embedded PostgreSQL is not reachable: ${err.message}`));
      }
    });
    client.once("close", () => {
      backend.destroy();
      closed();
    });
    backend.once("close", () => {
      if (!client.writableEnded) client.end();
      closed();
    });
    client.pipe(backend);
    backend.pipe(client);
  }

  #admitNext(): void {
    if (this.#closed) return;
    for (let next = this.#waiting.shift(); next !== undefined; next = this.#waiting.shift()) {
      clearTimeout(next.timer);
      if (next.client.destroyed) continue;
      this.#admit(next.client);
      return;
    }
  }
}

/** A PostgreSQL ErrorResponse message, so clients report the reason instead of a dropped connection. */
function errorResponse(sqlState: string, message: string): Buffer {
  const fields = Buffer.concat([
    field("S", "FATAL"),
    field("V", "FATAL"),
    field("C", sqlState),
    field("M", message),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(5);
  header.write("E", 0, "latin1");
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}

function field(code: string, value: string): Buffer {
  return Buffer.concat([Buffer.from(code, "latin1"), Buffer.from(value, "utf8"), Buffer.from([0])]);
}

/** A socket path only this process can reach, so nothing bypasses the session queue. */
async function privateSocketPath(): Promise<{ path: string; remove: () => Promise<void> }> {
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
async function publicSocketFolder(root: string): Promise<{ dir: string; inTmp: boolean; remove: () => Promise<void> }> {
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

function listen(server: Server, path: string): Promise<void> {
  return new Promise((done, fail) => {
    const onError = (err: Error): void => {
      fail(new Error(`embedded PostgreSQL cannot listen on ${path}: ${err.message}`, { cause: err }));
    };
    server.once("error", onError);
    server.listen(path, () => {
      server.off("error", onError);
      done();
    });
  });
}

/**
 * Takes `<dataDir>/pglite.lock` for this process. Best effort: two processes taking over the same
 * stale lock in the same instant could both succeed (Node has no flock).
 */
async function acquireLock(lockPath: string, pgDir: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    if (await createLockFile(lockPath)) return;
    const holder = await readLockPid(lockPath);
    if (holder !== undefined && isProcessAlive(holder)) {
      const who = holder === process.pid ? `this process (pid ${holder})` : `process ${holder}`;
      throw new Error(
        `The embedded PostgreSQL data folder ${pgDir} is already in use by ${who}; two PGlite ` +
          `instances on one folder corrupt it. Stop the other instance, pass a different data folder, ` +
          `or set DATABASE_URL to use a PostgreSQL server. If ${who} does not use it, delete ${lockPath}.`,
      );
    }
    await rm(lockPath, { force: true });
  }
  throw new Error(`Could not take the embedded PostgreSQL lock ${lockPath}: it keeps being recreated; retry.`);
}

/**
 * Creates the lock file with our pid in one step (write a private file, hard-link it into place),
 * so nobody reads a lock that exists but is still empty. False if it already exists.
 */
async function createLockFile(lockPath: string): Promise<boolean> {
  const staging = `${lockPath}.${process.pid}.${randomUUID()}`;
  await writeFile(staging, `${process.pid}\n`);
  try {
    await link(staging, lockPath);
    return true;
  } catch (err) {
    if (isErrnoException(err) && err.code === "EEXIST") return false;
    throw err;
  } finally {
    await rm(staging, { force: true });
  }
}

/** Removes the lock if it is still ours. */
async function releaseLock(lockPath: string): Promise<void> {
  if ((await readLockPid(lockPath)) === process.pid) await rm(lockPath, { force: true });
}

async function readLockPid(lockPath: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(lockPath, "utf8");
  } catch (err) {
    if (isErrnoException(err) && err.code === "ENOENT") return undefined;
    throw err;
  }
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    return isErrnoException(err) && err.code === "EPERM";
  }
}

function isErrnoException(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && "code" in err;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
