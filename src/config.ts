/**
 * The one place that reads the environment. It runs once at start-up, validates every value and
 * fails with a message naming the variable; everything else receives a {@link Config}.
 */
import { resolve } from "node:path";

/** Validated service configuration. */
export interface Config {
  /** TCP port for gRPC, gRPC-Web and Connect (`PORT`, default 8080; 0 picks a free port). */
  readonly port: number;
  /** Interface to listen on (`HOST`, default `0.0.0.0`). */
  readonly host: string;
  /** PostgreSQL URL (`DATABASE_URL`); unset means the embedded database in {@link dataDir}. */
  readonly databaseUrl: string | undefined;
  /** Folder for the embedded database and anything else kept on disk (`ANALYTICS_DATA_DIR`). */
  readonly dataDir: string;
  /** Master switch for request logging (`ANALYTICS_ENABLED`, default true). */
  readonly analyticsEnabled: boolean;
  /** Days of raw rows to keep (`ANALYTICS_RETENTION_DAYS`, default 90). */
  readonly retentionDays: number;
  /** How long in-flight calls get to finish at shutdown (`ANALYTICS_SHUTDOWN_TIMEOUT_MS`). */
  readonly shutdownTimeoutMs: number;
  /** How long a new connection may take to send its first bytes (`ANALYTICS_SNIFF_TIMEOUT_MS`). */
  readonly sniffTimeoutMs: number;
  /** Apply pending migrations at start (`ANALYTICS_MIGRATE_ON_START`, default true). */
  readonly migrateOnStart: boolean;
  /** Log verbosity (`LOG_LEVEL`: debug, info, warn, error; default info). */
  readonly logLevel: LogLevel;
}

/** Log levels, most verbose first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A configuration value that is missing, malformed or unknown. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

type Env = Readonly<Record<string, string | undefined>>;

interface Spec<T> {
  readonly name: string;
  readonly parse: (raw: string) => T;
  readonly fallback: T;
}

const int = (min: number, max: number) => (raw: string) => {
  if (!/^-?\d+$/.test(raw.trim())) throw new Error(`must be an integer from ${min} to ${max}`);
  const n = Number(raw);
  if (n < min || n > max) throw new Error(`must be an integer from ${min} to ${max}`);
  return n;
};

const bool = (raw: string) => {
  const v = raw.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off"].includes(v)) return false;
  throw new Error("must be true or false");
};

const oneOf =
  <T extends string>(values: readonly T[]) =>
  (raw: string): T => {
    const v = raw.trim().toLowerCase();
    if (!(values as readonly string[]).includes(v)) throw new Error(`must be one of ${values.join(", ")}`);
    return v as T;
  };

const postgresUrl = (raw: string) => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error("must be a URL like postgres://user@host:5432/database");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new Error("must start with postgres:// or postgresql://");
  }
  return raw;
};

const nonEmpty = (raw: string) => {
  if (raw.trim() === "") throw new Error("must not be empty");
  return raw.trim();
};

/**
 * Every variable the service reads. Variables starting with `ANALYTICS_` that are not listed here
 * fail start-up, so a typo never silently falls back to a default.
 */
const SPECS = {
  port: { name: "PORT", parse: int(0, 65535), fallback: 8080 },
  host: { name: "HOST", parse: nonEmpty, fallback: "0.0.0.0" },
  databaseUrl: { name: "DATABASE_URL", parse: postgresUrl, fallback: undefined },
  dataDir: { name: "ANALYTICS_DATA_DIR", parse: nonEmpty, fallback: "./data" },
  analyticsEnabled: { name: "ANALYTICS_ENABLED", parse: bool, fallback: true },
  retentionDays: { name: "ANALYTICS_RETENTION_DAYS", parse: int(1, 36500), fallback: 90 },
  shutdownTimeoutMs: { name: "ANALYTICS_SHUTDOWN_TIMEOUT_MS", parse: int(0, 600_000), fallback: 10_000 },
  sniffTimeoutMs: { name: "ANALYTICS_SNIFF_TIMEOUT_MS", parse: int(100, 600_000), fallback: 10_000 },
  migrateOnStart: { name: "ANALYTICS_MIGRATE_ON_START", parse: bool, fallback: true },
  logLevel: { name: "LOG_LEVEL", parse: oneOf(LOG_LEVELS), fallback: "info" as LogLevel },
} satisfies { [K in keyof Config]: Spec<Config[K]> };

/** Names of all variables the service reads, for help text and the unknown-variable check. */
export const CONFIG_VARIABLES: readonly string[] = Object.values(SPECS).map((s) => s.name);

/**
 * Reads and validates the configuration.
 *
 * @param env - the environment to read (defaults to `process.env`).
 * @param overrides - values that win over the environment (tests, CLI flags).
 * @throws ConfigError listing every bad variable at once, so one restart fixes them all.
 */
export function loadConfig(env: Env = process.env, overrides: Partial<Config> = {}): Config {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(SPECS) as [keyof Config, Spec<unknown>][]) {
    const raw = env[spec.name];
    if (raw === undefined || raw === "") {
      out[key] = spec.fallback;
      continue;
    }
    try {
      out[key] = spec.parse(raw);
    } catch (err) {
      problems.push(`${spec.name}=${JSON.stringify(raw)} ${(err as Error).message}`);
    }
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith("ANALYTICS_") && !CONFIG_VARIABLES.includes(name)) {
      problems.push(`${name} is not a known setting (known: ${CONFIG_VARIABLES.filter((n) => n.startsWith("ANALYTICS_")).join(", ")})`);
    }
  }
  if (problems.length > 0) {
    throw new ConfigError(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
  const config = { ...out, ...overrides } as Config;
  return { ...config, dataDir: resolve(config.dataDir) };
}
