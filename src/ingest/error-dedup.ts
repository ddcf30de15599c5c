/**
 * Error de-duplication decisions, free of I/O.
 *
 * An error report with the same {@link dedupKey} as a stored error, occurring within the
 * de-duplication interval of it, is not stored again: the stored row's occurrence count goes up and
 * its last-seen time moves forward. {@link decideDedup} makes that call; {@link DedupIndex} is a
 * bounded cache of stored errors that saves the database lookup for hot keys.
 *
 * The database stays the source of truth (restarts, several instances). A decision made from a
 * cached entry is therefore a hint, and the writer should apply it so that a stale cache cannot
 * lose data or miss a regression:
 *
 * - increment with a conditional update that re-checks the window and computes regression from the
 *   row itself (another instance may have resolved it), and insert instead when it matches no row:
 *   ```sql
 *   UPDATE errors SET occurrence_count = occurrence_count + 1,
 *     last_seen_at = greatest(last_seen_at, $t), first_seen_at = least(first_seen_at, $t),
 *     regressed = regressed OR (resolved AND NOT coalesce(resolved_at >= $t, false)),
 *     resolved = resolved AND coalesce(resolved_at >= $t, false)
 *   WHERE id = $id AND $t - last_seen_at < $interval AND first_seen_at - $t < $interval
 *   RETURNING regressed, resolved
 *   ```
 * - `greatest`/`least` make concurrent increments from several instances commute;
 * - a stale cache can at worst insert a second row for an error another instance has extended, never
 *   drop an occurrence or miss a regression.
 */
import { createHash } from "node:crypto";
import type { Principal } from "../auth/principal.js";

/** Default de-duplication interval: 300 s. */
export const DEFAULT_DEDUP_INTERVAL_MS = 300_000;

/** Default number of keys {@link DedupIndex} keeps. */
export const DEFAULT_DEDUP_INDEX_MAX_ENTRIES = 100_000;

/** The fields of an error report that identify it for de-duplication. */
export interface DedupIdentity {
  deviceId?: string | undefined;
  errorCode?: string | undefined;
  errorMessage: string;
  /**
   * Whose group the report joins: `undefined` for the fleet's shared groups, else a reporter
   * scope from {@link dedupReporter} (see there for the rule).
   */
  reporter?: string | undefined;
  /** Accepted so a whole report can be passed; not part of the key (see {@link dedupKey}). */
  category?: unknown;
}

/**
 * The reporter scope of an error report, the grouping rule:
 *
 * - devices, services and admins (and calls without a principal, auth off) report into the fleet's
 *   shared groups: a service relaying a device's error and the device itself count on one row;
 * - a `user` token may name any device (a browser reports what it saw), so what it reports is
 *   grouped apart, per user: it never joins, counts on, reopens or learns the id and count of a
 *   group that a device, a service or another user reported.
 *
 * The answer to a report names only the group it was counted on, so a user is only ever told
 * about rows of its own scope.
 */
export function dedupReporter(principal: Pick<Principal, "role" | "subject"> | undefined): string | undefined {
  return principal?.role === "user" ? `user:${principal.subject}` : undefined;
}

/**
 * Stable de-duplication key: the hex SHA-256 of `JSON.stringify([deviceId, errorCode, errorMessage])`,
 * with a missing device or code written as `""` (64 characters whatever the message length); a
 * report with a {@link DedupIdentity.reporter} scope appends it as a fourth element, so its keys
 * never equal a shared group's (whose encoding, and so every stored key, is unchanged).
 *
 * - Nothing is normalised: case, whitespace and Unicode form are significant, so two messages that
 *   differ in any character are different errors. A missing field equals an empty one because
 *   proto3 cannot tell them apart.
 * - The category is not part of the identity (same device, code and message is the same error), so
 *   re-classifying an error does not split its row.
 * - The JSON array encoding is unambiguous (no separator a field could contain), and the hash keeps
 *   the key short enough for an index however long the message is.
 *
 * The key is stored with the row, so this encoding must not change without a migration.
 */
export function dedupKey(e: DedupIdentity): string {
  const fields = [e.deviceId ?? "", e.errorCode ?? "", e.errorMessage];
  if (e.reporter !== undefined) fields.push(e.reporter);
  const encoded = JSON.stringify(fields);
  return createHash("sha256").update(encoded, "utf8").digest("hex");
}

/** What de-duplication needs to know about a stored error. */
export interface DedupEntry {
  /** Primary key of the stored error row. */
  id: string;
  firstSeenAtMs: number;
  lastSeenAtMs: number;
  resolved: boolean;
  /**
   * When the error was resolved, if known. A late report of an occurrence from before this time is
   * not a regression; without it every occurrence after a resolve counts as one.
   */
  resolvedAtMs?: number | undefined;
}

/** Outcome of {@link decideDedup}. */
export type DedupDecision =
  | { action: "insert" }
  | {
      action: "increment";
      /** The stored error to increment. */
      id: string;
      /** True when the stored error is resolved and this occurrence reopens it: set `regressed = true, resolved = false`. */
      regressed: boolean;
    };

/**
 * Decides whether an occurrence at `occurredAtMs` is stored as a new error or counted on `existing`
 * (the most recently seen stored error with the same key, if any).
 *
 * The window slides with the last sighting: the occurrence increments `existing` when
 * `occurredAtMs - lastSeenAtMs < intervalMs`. Measuring from the first sighting instead would split
 * a continuously repeating error into one row per interval, which is what de-duplication is meant
 * to prevent; with a sliding window a row is an unbroken burst, and a gap of at least the interval
 * starts a new row. Exactly at the interval (`=`) is outside the window and inserts.
 *
 * Out-of-order reports (devices upload buffered errors late) are symmetrical: an occurrence older
 * than `lastSeenAtMs` increments when `firstSeenAtMs - occurredAtMs < intervalMs`, and the caller
 * keeps `lastSeenAtMs` at the maximum and `firstSeenAtMs` at the minimum (see
 * {@link applyIncrement}), so last-seen never moves backwards. An occurrence long before the stored
 * burst inserts its own row rather than stretching this one.
 *
 * An occurrence counted on a resolved error marks it regressed, unless `resolvedAtMs` is known and
 * the occurrence is not after it (a late report of something the fix already covered). A resolved
 * error seen again after the window is a new row (`insert`); it is not flagged here.
 *
 * An `intervalMs` of 0 disables de-duplication (every occurrence inserts).
 *
 * @throws RangeError if `intervalMs` is negative or not finite, or a time is not finite.
 */
export function decideDedup(
  existing: DedupEntry | undefined,
  occurredAtMs: number,
  intervalMs: number,
): DedupDecision {
  if (!Number.isFinite(intervalMs) || intervalMs < 0) {
    throw new RangeError(`dedup interval must be a finite non-negative number of ms, got ${intervalMs}`);
  }
  if (!Number.isFinite(occurredAtMs)) throw new RangeError(`occurredAtMs must be finite, got ${occurredAtMs}`);
  // Checked explicitly: a row stored under a longer interval spans time, and the window test
  // alone would still count occurrences inside that span.
  if (existing === undefined || intervalMs === 0) return { action: "insert" };

  const withinWindow =
    occurredAtMs - existing.lastSeenAtMs < intervalMs && existing.firstSeenAtMs - occurredAtMs < intervalMs;
  if (!withinWindow) return { action: "insert" };

  const regressed =
    existing.resolved && (existing.resolvedAtMs === undefined || occurredAtMs > existing.resolvedAtMs);
  return { action: "increment", id: existing.id, regressed };
}

/**
 * The entry after an `increment` decision, for updating the cache the same way the database row is
 * updated: first/last seen widened to include the occurrence, and reopened when it regressed.
 */
export function applyIncrement(entry: DedupEntry, occurredAtMs: number, regressed: boolean): DedupEntry {
  const next: DedupEntry = {
    id: entry.id,
    firstSeenAtMs: Math.min(entry.firstSeenAtMs, occurredAtMs),
    lastSeenAtMs: Math.max(entry.lastSeenAtMs, occurredAtMs),
    resolved: regressed ? false : entry.resolved,
  };
  if (!regressed && entry.resolvedAtMs !== undefined) next.resolvedAtMs = entry.resolvedAtMs;
  return next;
}

/**
 * Least-recently-used cache from {@link dedupKey} to the stored error with that key, bounded to
 * `maxEntries`. A miss means "ask the database", not "no such error". Entries are copied in and
 * out, so callers cannot change cached state by accident.
 */
export class DedupIndex {
  readonly maxEntries: number;
  // Map iteration order is insertion order; re-inserting on access makes the first key the LRU one.
  #byKey = new Map<string, DedupEntry>();
  // Resolving arrives by error id, not by key.
  #keyById = new Map<string, string>();

  constructor(options: { maxEntries?: number } = {}) {
    const maxEntries = options.maxEntries ?? DEFAULT_DEDUP_INDEX_MAX_ENTRIES;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${maxEntries}`);
    }
    this.maxEntries = maxEntries;
  }

  /** Number of cached keys. */
  get size(): number {
    return this.#byKey.size;
  }

  /** The cached entry for `key`, marking it most recently used. */
  get(key: string): DedupEntry | undefined {
    const entry = this.#byKey.get(key);
    if (entry === undefined) return undefined;
    this.#byKey.delete(key);
    this.#byKey.set(key, entry);
    return { ...entry };
  }

  /** Caches `entry` for `key` (replacing any previous row for the key), evicting the LRU key when full. */
  set(key: string, entry: DedupEntry): void {
    const previous = this.#byKey.get(key);
    if (previous !== undefined) {
      this.#byKey.delete(key);
      if (this.#keyById.get(previous.id) === key) this.#keyById.delete(previous.id);
    }
    // An id moving to another key would leave the old key pointing at a row it no longer owns.
    const oldKey = this.#keyById.get(entry.id);
    if (oldKey !== undefined && oldKey !== key) this.#byKey.delete(oldKey);
    this.#byKey.set(key, { ...entry });
    this.#keyById.set(entry.id, key);
    while (this.#byKey.size > this.maxEntries) {
      const [lruKey, lruEntry] = this.#byKey.entries().next().value as [string, DedupEntry];
      this.#byKey.delete(lruKey);
      this.#keyById.delete(lruEntry.id);
    }
  }

  /**
   * Records that error `id` was resolved or reopened, if it is cached. Does not change recency.
   * Other instances' caches do not see this, which is why the database update also computes
   * regression (see the module documentation).
   *
   * @returns whether the id was cached.
   */
  markResolved(id: string, resolved: boolean, resolvedAtMs?: number): boolean {
    const key = this.#keyById.get(id);
    const entry = key === undefined ? undefined : this.#byKey.get(key);
    if (entry === undefined) return false;
    entry.resolved = resolved;
    if (resolved && resolvedAtMs !== undefined) entry.resolvedAtMs = resolvedAtMs;
    else delete entry.resolvedAtMs;
    return true;
  }

  /** Forgets `key`, e.g. when its row is deleted or a write through it failed. */
  delete(key: string): boolean {
    const entry = this.#byKey.get(key);
    if (entry === undefined) return false;
    this.#byKey.delete(key);
    if (this.#keyById.get(entry.id) === key) this.#keyById.delete(entry.id);
    return true;
  }

  /** Forgets everything. */
  clear(): void {
    this.#byKey.clear();
    this.#keyById.clear();
  }
}
