/**
 * The one place that reads the environment. It runs once at start-up, validates every value and
 * fails with a message naming the variable; everything else receives a {@link Config}.
 *
 * This file holds the settings (the {@link Config} fields, whose TSDoc docs/CONFIGURATION.md is
 * generated from, and one table line per variable); the value parsers are in `config-parsers.ts`
 * and the wording of problems (redaction, nearest names) in `config-messages.ts`.
 */
import { resolve } from "node:path";
import { getHeapStatistics } from "node:v8";
import { parseRateLimits, DEFAULT_RATE_LIMITS, type RateLimits } from "./auth/rate-limit-policy.js";
import { DEFAULT_IP_ANONYMIZATION, IP_ANONYMIZATION_MODES, type IpAnonymization } from "./util/anonymize-ip.js";
import { LOG_LEVELS, type LogLevel } from "./util/logger.js";
import { bool, decimal, httpUrl, int, jwtSecret, metricNames, metricThresholds, nonEmpty, oneOf, origins, pastInstant, postgresUrl, type MetricThresholdSetting } from "./config-parsers.js";
import { editDistance, shownValue } from "./config-messages.js";

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
  /** Run the raw-data retention job inside the server (`ANALYTICS_RETENTION_ENABLED`, default true). */
  readonly retentionEnabled: boolean;
  /** Minutes between retention runs (`ANALYTICS_RETENTION_INTERVAL_MINUTES`, default 60). */
  readonly retentionIntervalMinutes: number;
  /** Rows deleted per statement by the retention job (`ANALYTICS_RETENTION_BATCH_SIZE`, default 5000). */
  readonly retentionBatchSize: number;
  /** Days of hourly/daily rollups to keep (`ANALYTICS_ROLLUP_RETENTION_DAYS`, default 400; at least 8). */
  readonly rollupRetentionDays: number;
  /** How long in-flight calls get to finish at shutdown (`ANALYTICS_SHUTDOWN_TIMEOUT_MS`). */
  readonly shutdownTimeoutMs: number;
  /** How long a new connection may take to send its first bytes (`ANALYTICS_SNIFF_TIMEOUT_MS`). */
  readonly sniffTimeoutMs: number;
  /** An HTTP/1.1 request's headers must arrive within this, each request of a keep-alive connection anew; else `408` and close (`ANALYTICS_HEADERS_TIMEOUT_MS`, default 10000). */
  readonly headersTimeoutMs: number;
  /** A connection or HTTP/2 session without an open request or stream for this long is closed (GOAWAY on HTTP/2) (`ANALYTICS_IDLE_TIMEOUT_MS`, default 120000). */
  readonly idleTimeoutMs: number;
  /** Streams one HTTP/2 session may have open at once, advertised as SETTINGS_MAX_CONCURRENT_STREAMS (`ANALYTICS_MAX_CONCURRENT_STREAMS`, default 128, at least 100). */
  readonly maxConcurrentStreams: number;
  /** Open connections overall; more are closed at once (`ANALYTICS_MAX_CONNECTIONS`, default 4096). */
  readonly maxConnections: number;
  /** Open connections per client address (IPv6: per /64); more are closed at once (`ANALYTICS_MAX_CONNECTIONS_PER_CLIENT`, default 256; 0: no cap). */
  readonly maxConnectionsPerClient: number;
  /** Apply pending migrations at start (`ANALYTICS_MIGRATE_ON_START`, default true). */
  readonly migrateOnStart: boolean;
  /** Log verbosity (`LOG_LEVEL`: debug, info, warn, error; default info). */
  readonly logLevel: LogLevel;
  /** HS256 token secret (`ANALYTICS_JWT_SECRET`); unset: one is created in {@link dataDir}. */
  readonly jwtSecret: string | undefined;
  /** JWKS URL for asymmetrically signed tokens (`ANALYTICS_JWKS_URL`). */
  readonly jwksUrl: string | undefined;
  /** JWKS file for asymmetrically signed tokens (`ANALYTICS_JWKS_FILE`). */
  readonly jwksFile: string | undefined;
  /** Required `iss` claim (`ANALYTICS_JWT_ISSUER`); unset: not checked. */
  readonly jwtIssuer: string | undefined;
  /** Required `aud` claim (`ANALYTICS_JWT_AUDIENCE`); unset: not checked. */
  readonly jwtAudience: string | undefined;
  /**
   * Revocation cut-off, epoch ms (`ANALYTICS_TOKENS_NOT_BEFORE`: an ISO-8601 time or epoch
   * seconds; unset: none). Tokens issued (`iat`) before it, and tokens without `iat`, are refused.
   */
  readonly tokensNotBeforeMs: number | undefined;
  /** Browser origins allowed by CORS, with credentials (`ANALYTICS_CORS_ORIGINS`, comma-separated). */
  readonly corsOrigins: readonly string[];
  /** Serve gRPC server reflection (`ANALYTICS_REFLECTION`, default true). */
  readonly reflection: boolean;
  /**
   * The hand-written wire code (`src/wire/README.md`): binary `LogEvents` and unary `Log*` read by
   * the compiled decoder, rows sent as binary COPY (`ANALYTICS_WIRE_FAST_PATH`, default true).
   * Off: protobuf-es for binary requests and text COPY, for diagnosing a suspected fast-path bug
   * (slower, and a `Struct` field sent many times in a binary request costs quadratic time again).
   * The JSON decoding of `Log*` calls, which keeps large bodies from holding the process, stays on.
   */
  readonly wireFastPath: boolean;
  /** Per-role token buckets (`ANALYTICS_RATE_LIMITS`, e.g. `user=5/s:20,device=off`). */
  readonly rateLimits: RateLimits;
  /** How stored client IPs are anonymised (`ANALYTICS_IP_ANONYMIZATION`, default truncate). */
  readonly ipAnonymization: IpAnonymization;
  /** Largest accepted request message in bytes (`ANALYTICS_MAX_MESSAGE_BYTES`, default 4 MiB). */
  readonly maxMessageBytes: number;
  /** Longest a unary call may run, in ms (`ANALYTICS_DEADLINE_MS`, default 30000; 0: no cap). */
  readonly deadlineMs: number;
  /** Same device, code and message within this many ms is counted, not stored again (`ANALYTICS_ERROR_DEDUP_INTERVAL_MS`; 0 disables). */
  readonly errorDedupIntervalMs: number;
  /** Rows per batch-writer flush (`ANALYTICS_WRITER_BATCH_ROWS`). */
  readonly writerBatchRows: number;
  /** Longest a durable row waits for its batch (`ANALYTICS_WRITER_MAX_DELAY_MS`). */
  readonly writerMaxDelayMs: number;
  /** Cap on rows buffered in the writer (`ANALYTICS_WRITER_MAX_BUFFERED_ROWS`). */
  readonly writerMaxBufferedRows: number;
  /** Cap on bytes buffered in the writer (`ANALYTICS_WRITER_MAX_BUFFERED_MB`, in MiB). */
  readonly writerMaxBufferedBytes: number;
  /** Longest a durable write waits through database errors (`ANALYTICS_WRITER_MAX_WAIT_MS`). */
  readonly writerMaxWaitMs: number;
  /**
   * Insert strategy (`ANALYTICS_WRITER_STRATEGY`: copy, unnest or multi-row); unset means COPY on
   * `DATABASE_URL` and unnest on the embedded database (see {@link writerStrategyOf}).
   */
  readonly writerStrategy: WriterStrategy | undefined;
  /** Procedure prefixes the request log skips (`ANALYTICS_REQUEST_LOG_SKIP`, comma-separated). */
  readonly requestLogSkip: readonly string[] | undefined;
  /**
   * Share of the writer's buffer (rows and bytes) that request-log rows of unauthenticated calls
   * may fill; rows beyond it are dropped and counted as `shedOffers`
   * (`ANALYTICS_REQUEST_LOG_UNAUTHENTICATED_SHARE`, 0 to 1, default 0.1).
   */
  readonly requestLogUnauthenticatedShare: number;
  /** Trusted proxies in front of the server, for `X-Forwarded-For` (`ANALYTICS_TRUSTED_PROXY_HOPS`). */
  readonly trustedProxyHops: number;
  /** Connections to `DATABASE_URL` (`ANALYTICS_DB_POOL_MAX`; the embedded database always uses 1). */
  readonly dbPoolMax: number;
  /** Device metrics: a sample this long after the last stored one is stored (`ANALYTICS_METRICS_SNAPSHOT_INTERVAL_MS`, default 300000). */
  readonly metricsSnapshotIntervalMs: number;
  /** Device metrics: relative change that is significant, inclusive (`ANALYTICS_METRICS_CHANGE_THRESHOLD`, default 0.05). */
  readonly metricsChangeThreshold: number;
  /** Device metrics: where the stored value is 0, store when `|new|` exceeds this (`ANALYTICS_METRICS_ZERO_BASELINE_THRESHOLD`, default 1.0). */
  readonly metricsZeroBaselineThreshold: number;
  /** Device metrics judged by absolute change (`ANALYTICS_METRICS_RATE_METRICS`, comma-separated, default `error_rate`). */
  readonly metricsRateMetrics: readonly string[];
  /** Absolute change, strict, that is significant for rate metrics (`ANALYTICS_METRICS_RATE_THRESHOLD`, default 0.01). */
  readonly metricsRateThreshold: number;
  /** Per-metric rules over the above (`ANALYTICS_METRICS_THRESHOLDS`, e.g. `temperature=relative:0.1,battery=absolute:2`). */
  readonly metricsThresholds: Readonly<Record<string, MetricThresholdSetting>>;
  /** Device metrics: samples dated further ahead of the server clock are rejected (`ANALYTICS_METRICS_MAX_FUTURE_SKEW_MS`, default 300000). */
  readonly metricsMaxFutureSkewMs: number;
  /** Devices the metrics filter tracks at once, least recently seen evicted (`ANALYTICS_METRICS_MAX_DEVICES`, default 100000). */
  readonly metricsMaxDevices: number;
  /** A device silent this long is forgotten by the metrics filter (`ANALYTICS_METRICS_IDLE_EVICTION_MS`, default 3600000). */
  readonly metricsIdleEvictionMs: number;
  /** Samples per StreamDeviceMetrics / IngestDeviceMetrics message (`ANALYTICS_METRICS_MAX_SAMPLES_PER_MESSAGE`, 1-1000, default 1000). */
  readonly metricsMaxSamplesPerMessage: number;
  /** Encoded size of one device-metrics message (`ANALYTICS_METRICS_MAX_MESSAGE_BYTES`, default 1048576). */
  readonly metricsMaxMessageBytes: number;
  /** Open StreamDeviceMetrics streams per device (`ANALYTICS_METRICS_MAX_STREAMS_PER_DEVICE`, default 4). */
  readonly metricsMaxStreamsPerDevice: number;
  /** Batches of one stream being written and not yet acknowledged (`ANALYTICS_METRICS_MAX_IN_FLIGHT`, default 128). */
  readonly metricsMaxInFlightBatches: number;
  /**
   * Bytes of state the metrics filter keeps, least recently seen devices evicted beyond it
   * (`ANALYTICS_METRICS_MAX_STATE_MB`, in MiB; default 1/8 of the V8 heap limit, see
   * {@link DEFAULT_METRICS_MAX_STATE_BYTES}).
   */
  readonly metricsMaxStateBytes: number;
}

/** Log levels, most verbose first (defined beside the logger, which orders by them). */
export { LOG_LEVELS, type LogLevel };

/** How one device metric's change is judged (see `src/metrics/smart-data-filter.ts`). */
export type { MetricThresholdSetting };

/** Shows a URL without its password (defined beside the other rules for what messages reveal). */
export { redactUrl } from "./config-messages.js";

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

/**
 * Default of `metricsMaxStateBytes`: 1/8 of the V8 heap limit (`heap_size_limit`, set by
 * `--max-old-space-size` or, by default, from the machine's memory: ~4 GiB gives ~518 MiB). A share
 * of the heap rather than a fixed size, so a small container is not told it may use more than it has.
 */
export const DEFAULT_METRICS_MAX_STATE_BYTES = Math.floor(getHeapStatistics().heap_size_limit / 8);

/** How the batch writer inserts rows (`ANALYTICS_WRITER_STRATEGY`). */
export const WRITER_STRATEGIES = ["copy", "unnest", "multi-row"] as const;
export type WriterStrategy = (typeof WRITER_STRATEGIES)[number];

/**
 * The writer's strategy: the configured one, else COPY on a real PostgreSQL server (the fastest,
 * `npm run bench -- writer`) and `unnest` on the embedded one, where COPY hangs the socket.
 */
export function writerStrategyOf(config: Pick<Config, "writerStrategy" | "databaseUrl">): WriterStrategy {
  return config.writerStrategy ?? (config.databaseUrl === undefined ? "unnest" : "copy");
}

/**
 * Every variable the service reads. Variables starting with `ANALYTICS_` that are not listed here
 * (nor in {@link CLIENT_VARIABLES}) fail start-up, so a typo never silently falls back to a default.
 */
const SPECS = {
  port: { name: "PORT", parse: int(0, 65535), fallback: 8080 },
  host: { name: "HOST", parse: nonEmpty, fallback: "0.0.0.0" },
  databaseUrl: { name: "DATABASE_URL", parse: postgresUrl, fallback: undefined },
  dataDir: { name: "ANALYTICS_DATA_DIR", parse: nonEmpty, fallback: "./data" },
  analyticsEnabled: { name: "ANALYTICS_ENABLED", parse: bool, fallback: true },
  retentionDays: { name: "ANALYTICS_RETENTION_DAYS", parse: int(1, 36500), fallback: 90 },
  retentionEnabled: { name: "ANALYTICS_RETENTION_ENABLED", parse: bool, fallback: true },
  retentionIntervalMinutes: { name: "ANALYTICS_RETENTION_INTERVAL_MINUTES", parse: int(1, 10_080), fallback: 60 },
  retentionBatchSize: { name: "ANALYTICS_RETENTION_BATCH_SIZE", parse: int(100, 1_000_000), fallback: 5000 },
  // At least the longest query window (168 h) plus a day, so whole hours always come from rollups.
  rollupRetentionDays: { name: "ANALYTICS_ROLLUP_RETENTION_DAYS", parse: int(8, 36500), fallback: 400 },
  shutdownTimeoutMs: { name: "ANALYTICS_SHUTDOWN_TIMEOUT_MS", parse: int(0, 600_000), fallback: 10_000 },
  sniffTimeoutMs: { name: "ANALYTICS_SNIFF_TIMEOUT_MS", parse: int(100, 600_000), fallback: 10_000 },
  headersTimeoutMs: { name: "ANALYTICS_HEADERS_TIMEOUT_MS", parse: int(100, 600_000), fallback: 10_000 },
  idleTimeoutMs: { name: "ANALYTICS_IDLE_TIMEOUT_MS", parse: int(1000, 86_400_000), fallback: 120_000 },
  // At least 100 (RFC 9113 §6.5.2's advice): until a client has the server's SETTINGS, Node's
  // assumes 100 and streams it opens over a lower cap are refused, which connect-node does not retry.
  maxConcurrentStreams: { name: "ANALYTICS_MAX_CONCURRENT_STREAMS", parse: int(100, 65_536), fallback: 128 },
  maxConnections: { name: "ANALYTICS_MAX_CONNECTIONS", parse: int(1, 1_000_000), fallback: 4096 },
  maxConnectionsPerClient: { name: "ANALYTICS_MAX_CONNECTIONS_PER_CLIENT", parse: int(0, 1_000_000), fallback: 256 },
  migrateOnStart: { name: "ANALYTICS_MIGRATE_ON_START", parse: bool, fallback: true },
  logLevel: { name: "LOG_LEVEL", parse: oneOf(LOG_LEVELS), fallback: "info" as LogLevel },
  jwtSecret: { name: "ANALYTICS_JWT_SECRET", parse: jwtSecret, fallback: undefined },
  jwksUrl: { name: "ANALYTICS_JWKS_URL", parse: httpUrl, fallback: undefined },
  jwksFile: { name: "ANALYTICS_JWKS_FILE", parse: nonEmpty, fallback: undefined },
  jwtIssuer: { name: "ANALYTICS_JWT_ISSUER", parse: nonEmpty, fallback: undefined },
  jwtAudience: { name: "ANALYTICS_JWT_AUDIENCE", parse: nonEmpty, fallback: undefined },
  tokensNotBeforeMs: { name: "ANALYTICS_TOKENS_NOT_BEFORE", parse: pastInstant, fallback: undefined },
  corsOrigins: { name: "ANALYTICS_CORS_ORIGINS", parse: origins, fallback: [] as readonly string[] },
  reflection: { name: "ANALYTICS_REFLECTION", parse: bool, fallback: true },
  wireFastPath: { name: "ANALYTICS_WIRE_FAST_PATH", parse: bool, fallback: true },
  rateLimits: { name: "ANALYTICS_RATE_LIMITS", parse: parseRateLimits, fallback: DEFAULT_RATE_LIMITS },
  ipAnonymization: { name: "ANALYTICS_IP_ANONYMIZATION", parse: oneOf(IP_ANONYMIZATION_MODES), fallback: DEFAULT_IP_ANONYMIZATION },
  maxMessageBytes: { name: "ANALYTICS_MAX_MESSAGE_BYTES", parse: int(1024, 256 * 1024 * 1024), fallback: 4 * 1024 * 1024 },
  deadlineMs: { name: "ANALYTICS_DEADLINE_MS", parse: int(0, 3_600_000), fallback: 30_000 },
  errorDedupIntervalMs: { name: "ANALYTICS_ERROR_DEDUP_INTERVAL_MS", parse: int(0, 86_400_000), fallback: 300_000 },
  writerBatchRows: { name: "ANALYTICS_WRITER_BATCH_ROWS", parse: int(1, 50_000), fallback: 4000 },
  writerMaxDelayMs: { name: "ANALYTICS_WRITER_MAX_DELAY_MS", parse: int(0, 60_000), fallback: 5 },
  writerMaxBufferedRows: { name: "ANALYTICS_WRITER_MAX_BUFFERED_ROWS", parse: int(1, 10_000_000), fallback: 100_000 },
  writerMaxBufferedBytes: { name: "ANALYTICS_WRITER_MAX_BUFFERED_MB", parse: (raw: string) => int(1, 65_536)(raw) * 1024 * 1024, fallback: 64 * 1024 * 1024 },
  writerMaxWaitMs: { name: "ANALYTICS_WRITER_MAX_WAIT_MS", parse: int(0, 600_000), fallback: 10_000 },
  writerStrategy: { name: "ANALYTICS_WRITER_STRATEGY", parse: oneOf(WRITER_STRATEGIES), fallback: undefined as WriterStrategy | undefined },
  requestLogSkip: { name: "ANALYTICS_REQUEST_LOG_SKIP", parse: (raw: string) => raw.split(",").map((x) => x.trim()).filter((x) => x !== ""), fallback: undefined },
  requestLogUnauthenticatedShare: { name: "ANALYTICS_REQUEST_LOG_UNAUTHENTICATED_SHARE", parse: decimal(0, 1), fallback: 0.1 },
  trustedProxyHops: { name: "ANALYTICS_TRUSTED_PROXY_HOPS", parse: int(0, 10), fallback: 0 },
  dbPoolMax: { name: "ANALYTICS_DB_POOL_MAX", parse: int(1, 1000), fallback: 10 },
  metricsSnapshotIntervalMs: { name: "ANALYTICS_METRICS_SNAPSHOT_INTERVAL_MS", parse: int(1000, 86_400_000), fallback: 300_000 },
  metricsChangeThreshold: { name: "ANALYTICS_METRICS_CHANGE_THRESHOLD", parse: decimal(0, 100, true), fallback: 0.05 },
  metricsZeroBaselineThreshold: { name: "ANALYTICS_METRICS_ZERO_BASELINE_THRESHOLD", parse: decimal(0, 1e12), fallback: 1.0 },
  metricsRateMetrics: { name: "ANALYTICS_METRICS_RATE_METRICS", parse: metricNames, fallback: Object.freeze(["error_rate"]) },
  metricsRateThreshold: { name: "ANALYTICS_METRICS_RATE_THRESHOLD", parse: decimal(0, 1e12), fallback: 0.01 },
  metricsThresholds: { name: "ANALYTICS_METRICS_THRESHOLDS", parse: metricThresholds, fallback: Object.freeze({}) },
  metricsMaxFutureSkewMs: { name: "ANALYTICS_METRICS_MAX_FUTURE_SKEW_MS", parse: int(0, 86_400_000), fallback: 300_000 },
  metricsMaxDevices: { name: "ANALYTICS_METRICS_MAX_DEVICES", parse: int(1, 10_000_000), fallback: 100_000 },
  metricsIdleEvictionMs: { name: "ANALYTICS_METRICS_IDLE_EVICTION_MS", parse: int(1000, 604_800_000), fallback: 3_600_000 },
  metricsMaxSamplesPerMessage: { name: "ANALYTICS_METRICS_MAX_SAMPLES_PER_MESSAGE", parse: int(1, 1000), fallback: 1000 },
  metricsMaxMessageBytes: { name: "ANALYTICS_METRICS_MAX_MESSAGE_BYTES", parse: int(1024, 64 * 1024 * 1024), fallback: 1024 * 1024 },
  metricsMaxStreamsPerDevice: { name: "ANALYTICS_METRICS_MAX_STREAMS_PER_DEVICE", parse: int(1, 1000), fallback: 4 },
  metricsMaxInFlightBatches: { name: "ANALYTICS_METRICS_MAX_IN_FLIGHT", parse: int(1, 1000), fallback: 128 },
  metricsMaxStateBytes: { name: "ANALYTICS_METRICS_MAX_STATE_MB", parse: (raw: string) => int(1, 1_048_576)(raw) * 1024 * 1024, fallback: DEFAULT_METRICS_MAX_STATE_BYTES },
} satisfies { [K in keyof Config]: Spec<Config[K]> };

/** Names of all variables the service reads, for help text and the unknown-variable check. */
export const CONFIG_VARIABLES: readonly string[] = Object.values(SPECS).map((s) => s.name);

/**
 * `ANALYTICS_*` variables the project's own docs tell people to set for the clients, with where.
 * The server never reads them, and the unknown-variable check passes over them, so the shell a
 * newcomer set up for the SDK examples can start the server and run every CLI command. A variable
 * the docs or examples start reading (`process.env.ANALYTICS_...` in README.md, docs/, sdk/,
 * bench/) belongs here, or under a name without the prefix.
 */
export const CLIENT_VARIABLES: Readonly<Record<string, string>> = Object.freeze({
  ANALYTICS_TOKEN: "the bearer token the SDK examples send (README.md, sdk/README.md, createNodeTransport's TSDoc)",
});

const PREFIX = "ANALYTICS_";

/**
 * The known variable closest to `name`, if one is close enough to be a plausible misspelling
 * (at most a third of the differing part's length, and at least 2 edits allowed). The shared
 * `ANALYTICS_` prefix is left out of the comparison, so `ANALYTICS_LOG_LEVEL` finds `LOG_LEVEL`.
 */
export function closestSetting(name: string): string | undefined {
  const bare = name.startsWith(PREFIX) ? name.slice(PREFIX.length) : name;
  let best: { name: string; distance: number } | undefined;
  for (const known of [...CONFIG_VARIABLES, ...Object.keys(CLIENT_VARIABLES)]) {
    const distance = editDistance(bare, known.startsWith(PREFIX) ? known.slice(PREFIX.length) : known);
    if (best === undefined || distance < best.distance) best = { name: known, distance };
  }
  return best !== undefined && best.distance <= Math.max(2, Math.floor(bare.length / 3)) ? best.name : undefined;
}

/**
 * The problem an unknown `ANALYTICS_*` variable makes, without its value (it may be a secret).
 *
 * Unknown names refuse start-up rather than log a warning: a misspelt setting silently keeps its
 * default, and for several settings the default is the less safe side (a misspelt
 * `ANALYTICS_TOKENS_NOT_BEFORE` revokes nothing, a misspelt `ANALYTICS_IP_ANONYMIZATION=drop`
 * keeps storing truncated addresses, rate limits are not what was set); a warning scrolls past in
 * a JSON log, a refusal costs one restart. What made the rule hurt was a variable the project's
 * own docs tell people to set; those are exempt by name ({@link CLIENT_VARIABLES}).
 */
function unknownVariableProblem(name: string): string {
  const closest = closestSetting(name);
  if (closest === undefined) {
    return `${name} is not a known setting (no setting has a similar name; they are listed in docs/CONFIGURATION.md; if another program reads it, unset it for this one)`;
  }
  const clientSide = Object.hasOwn(CLIENT_VARIABLES, closest) ? " (read by the clients, not the server)" : "";
  return `${name} is not a known setting: did you mean ${closest}${clientSide}?`;
}

/**
 * With a JWKS anyone the identity provider serves is a possible signer, so a token must also be
 * meant for this service: `iss` and `aud` are required then.
 */
function keySourceProblems(config: Pick<Config, "jwksUrl" | "jwksFile" | "jwtIssuer" | "jwtAudience">): string[] {
  const source = config.jwksUrl !== undefined ? "ANALYTICS_JWKS_URL" : config.jwksFile !== undefined ? "ANALYTICS_JWKS_FILE" : undefined;
  if (source === undefined) return [];
  const problems: string[] = [];
  if (config.jwksUrl !== undefined && config.jwksFile !== undefined) problems.push("set only one of ANALYTICS_JWKS_URL and ANALYTICS_JWKS_FILE");
  if (config.jwtIssuer === undefined) problems.push(`ANALYTICS_JWT_ISSUER must be set with ${source} (the issuer whose tokens are accepted)`);
  if (config.jwtAudience === undefined) problems.push(`ANALYTICS_JWT_AUDIENCE must be set with ${source} (the audience tokens for this service carry)`);
  return problems;
}

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
      problems.push(`${spec.name}=${shownValue(spec.name, raw)} ${(err as Error).message}`);
    }
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith(PREFIX) && !CONFIG_VARIABLES.includes(name) && !Object.hasOwn(CLIENT_VARIABLES, name)) problems.push(unknownVariableProblem(name));
  }
  const merged = { ...out, ...overrides } as Config;
  if (merged.writerStrategy === "copy" && merged.databaseUrl === undefined) {
    problems.push("ANALYTICS_WRITER_STRATEGY=copy needs DATABASE_URL: COPY hangs the embedded database's socket");
  }
  problems.push(...keySourceProblems(merged));
  if (problems.length > 0) {
    throw new ConfigError(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
  return { ...merged, dataDir: resolve(merged.dataDir) };
}

/**
 * Each setting's variable and built-in default, keyed like {@link Config}; read-only, for
 * `scripts/config-docs.ts`, which generates docs/CONFIGURATION.md from it and the TSDoc of
 * {@link Config}.
 */
export const CONFIG_SETTINGS: { readonly [K in keyof Config]: { readonly name: string; readonly fallback: Config[K] } } = SPECS;
