/**
 * A fresh database per test file: a new PostgreSQL database on the `DATABASE_URL` server (CI),
 * or a new embedded PostgreSQL data folder when `DATABASE_URL` is unset. `drop()` removes it.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { loadConfig, type Config } from "../../src/config.js";

/** A throwaway database and the config that points at it. */
export interface TestDatabase {
  /** Config for `buildServer`: port 0 on loopback, the fresh database, a temp data folder. */
  readonly config: Config;
  /** True when tests run against the embedded PostgreSQL. */
  readonly embedded: boolean;
  drop(): Promise<void>;
}

/** Creates the database; `overrides` adjust the config. */
export async function createTestDatabase(overrides: Partial<Config> = {}): Promise<TestDatabase> {
  const dataDir = await mkdtemp(join(tmpdir(), "analytics-test-"));
  const baseUrl = process.env.DATABASE_URL;
  // No scheduled retention: tests store events with fixed (often old) times; they call
  // `runRetention` themselves when they test it.
  const base = loadConfig({}, { port: 0, host: "127.0.0.1", dataDir, logLevel: "warn", shutdownTimeoutMs: 2000, retentionEnabled: false });
  if (!baseUrl) {
    return {
      config: { ...base, databaseUrl: undefined, ...overrides },
      embedded: true,
      drop: () => rm(dataDir, { recursive: true, force: true }),
    };
  }
  const name = `analytics_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  try {
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    config: { ...base, databaseUrl: url.toString(), ...overrides },
    embedded: false,
    async drop() {
      const c = new pg.Client({ connectionString: baseUrl });
      await c.connect();
      try {
        await c.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await c.end();
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Whether tests that need a real PostgreSQL server (`DATABASE_URL`) run; when they do not, prints
 * one line naming them, why they need it and how to run them (CI always sets it).
 */
export function needsDatabaseUrl(what: string, why: string): boolean {
  if (process.env.DATABASE_URL) return true;
  console.log(`skipped: ${what} (${why}); to run: DATABASE_URL=postgres://USER@HOST:5432/DB npm test (CI always does)`);
  return false;
}
