/**
 * Applies error occurrences inside a writer flush: de-duplication against stored errors (the pure
 * decision is `decideDedup`; this module only talks SQL) and idempotent retries through
 * `error_event_receipts`, which remembers the answer given to each client `event_id`, including
 * for occurrences that were folded into another error's count.
 *
 * Groups are scoped by reporter (`dedupReporter`: a user's reports are grouped apart), and the
 * `dedup_key` carries that scope, so the group lookup below never crosses it. The receipts are
 * keyed by `event_id` alone, which a client chooses: a receipt is only answered to an occurrence
 * of the same group, so reusing another reporter's `event_id` tells nothing about its error.
 */
import type { SqlClient } from "../db/sql-runner.js";
import { decideDedup } from "../ingest/error-dedup.js";
import { multiRowInserts } from "./insert-sql.js";
import type { TableSpec } from "./table-specs.js";


/** What happened to one error occurrence. */
export interface ErrorWriteResult {
  readonly outcome: "stored" | "replayed" | "deduplicated";
  readonly id: string;
  readonly occurrenceCount: number;
  readonly regressed: boolean;
}

/** Times as epoch ms: the ORM's pool returns timestamptz as strings. */
interface Candidate {
  id: string;
  first_ms: number;
  last_ms: number;
  resolved: boolean;
  resolved_ms: number | null;
}

/** `values` with the `event_id` column emptied (its unique index belongs to another row). */
function withoutEventId(spec: TableSpec, values: readonly unknown[]): unknown[] {
  const copy = [...values];
  const at = spec.columns.findIndex((c) => c.name === "event_id");
  if (at >= 0) copy[at] = null;
  return copy;
}

/**
 * Applies one occurrence (`row`: an `error_logs` row, `values` in `spec.columns` order). Returns
 * its result and whether it is a new occurrence (false for a replayed event_id).
 */
export async function applyErrorOccurrence(
  client: SqlClient,
  spec: TableSpec,
  row: Readonly<Record<string, unknown>>,
  values: readonly unknown[],
  intervalMs: number,
): Promise<{ result: ErrorWriteResult; isNew: boolean }> {
  let eventId = row.event_id as string | null;
  const occurredAt = row.occurred_at as Date;
  if (eventId !== null) {
    // Claim the event id first: a concurrent retry blocks on this key until we commit, then
    // finds our receipt instead of counting the occurrence twice.
    const claimed = await client.query(
      `insert into "error_event_receipts" ("event_id", "error_id", "outcome", "occurrence_count", "regressed") values ($1, $2, 'pending', 0, false) on conflict ("event_id") do nothing returning "event_id"`,
      [eventId, row.id],
    );
    if (claimed.rows.length === 0) {
      const { rows } = await client.query<{ error_id: string; occurrence_count: number; regressed: boolean; dedup_key: string | null }>(
        `select r."error_id", r."occurrence_count", r."regressed", e."dedup_key" from "error_event_receipts" r
          left join "error_logs" e on e."id" = r."error_id" where r."event_id" = $1`,
        [eventId],
      );
      const r = rows[0]!;
      // A row gone (retention) cannot be told apart; its id and count name nothing any more.
      if (r.dedup_key === null || r.dedup_key === row.dedup_key) {
        return { result: { outcome: "replayed", id: r.error_id, occurrenceCount: r.occurrence_count, regressed: r.regressed }, isNew: false };
      }
      // Another group's event_id (another reporter's, or a client reusing ids across errors):
      // counted as the new occurrence it is, without that id, which stays the other's.
      eventId = null;
      values = withoutEventId(spec, values);
    }
  }

  const { rows: candidates } = await client.query<Candidate>(
    `select "id", (extract(epoch from "occurred_at") * 1000)::float8 as "first_ms", (extract(epoch from "last_seen_at") * 1000)::float8 as "last_ms",
        "resolved", (extract(epoch from "resolved_at") * 1000)::float8 as "resolved_ms" from "error_logs"
      where "dedup_key" = $1 and "last_seen_at" > $2::timestamptz - make_interval(secs => $3::float8 / 1000)
        and "occurred_at" < $2::timestamptz + make_interval(secs => $3::float8 / 1000)
      order by "last_seen_at" desc limit 1 for update`,
    [row.dedup_key, occurredAt, intervalMs],
  );
  const c = candidates[0];
  const decision = decideDedup(
    c && {
      id: c.id,
      firstSeenAtMs: c.first_ms,
      lastSeenAtMs: c.last_ms,
      resolved: c.resolved,
      resolvedAtMs: c.resolved_ms ?? undefined,
    },
    occurredAt.getTime(),
    intervalMs,
  );

  let result: ErrorWriteResult;
  if (decision.action === "insert") {
    const [stmt] = multiRowInserts({ ...spec, idempotency: "none" }, [values]);
    await client.query(stmt!.sql, stmt!.params);
    result = { outcome: "stored", id: row.id as string, occurrenceCount: 1, regressed: false };
  } else {
    const { rows } = await client.query<{ occurrence_count: number; regressed: boolean }>(
      `update "error_logs" set "occurrence_count" = "occurrence_count" + 1,
          "last_seen_at" = greatest("last_seen_at", $2), "occurred_at" = least("occurred_at", $2),
          "regressed" = "regressed" or $3, "resolved" = "resolved" and not $3,
          "resolved_at" = case when $3 then null else "resolved_at" end
        where "id" = $1 returning "occurrence_count", "regressed"`,
      [decision.id, occurredAt, decision.regressed],
    );
    const r = rows[0]!;
    result = { outcome: "deduplicated", id: decision.id, occurrenceCount: r.occurrence_count, regressed: r.regressed };
  }
  if (eventId !== null) {
    await client.query(
      `update "error_event_receipts" set "error_id" = $2, "outcome" = $3, "occurrence_count" = $4, "regressed" = $5 where "event_id" = $1`,
      [eventId, result.id, result.outcome, result.occurrenceCount, result.regressed],
    );
  }
  return { result, isNew: true };
}
