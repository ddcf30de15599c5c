/**
 * The embedded PostgreSQL's data-folder lock (`<dataDir>/pglite.lock`, holding the owner's pid):
 * two PGlite instances on one folder corrupt it, so `embedded-postgres.ts` takes the lock before
 * opening the folder and releases it at stop; a lock left by a process that no longer runs is
 * taken over.
 */
import { randomUUID } from "node:crypto";
import { link, readFile, rm, writeFile } from "node:fs/promises";

/**
 * Takes `<dataDir>/pglite.lock` for this process. Best effort: two processes taking over the same
 * stale lock in the same instant could both succeed (Node has no flock).
 */
export async function acquireLock(lockPath: string, pgDir: string): Promise<void> {
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
export async function releaseLock(lockPath: string): Promise<void> {
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
