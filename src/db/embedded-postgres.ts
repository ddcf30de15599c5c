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
 * So a session queue (`session-gate.ts`) goes in front: the public socket admits one connection
 * at a time and pipes it to pglite-socket on a private Unix socket (in its own 0700 folder); the
 * next connection waits until the current one closes, or fails after `connectionWaitTimeoutMs` with
 * SQLSTATE 53300. Callers must still use a pool of max 1: a second concurrent connection does
 * not run in parallel, it only waits. A transaction left open by a closed connection is rolled
 * back before the next one runs; other session state (SET, temp tables, named prepared
 * statements) lives in the one backend and outlasts the connection that created it.
 *
 * Its parts: `session-gate.ts` (the session queue), `socket-folders.ts` (the 0700 socket
 * folders), `data-folder-lock.ts` (one instance per data folder); this module starts and stops
 * them in order.
 */
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { createServer, connect, type Server } from "node:net";
import { join, resolve } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { acquireLock, releaseLock } from "./data-folder-lock.js";
import { SessionGate } from "./session-gate.js";
import { privateSocketPath, publicSocketFolder, SOCKET_PORT } from "./socket-folders.js";

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

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
