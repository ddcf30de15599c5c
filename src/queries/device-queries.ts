/**
 * Per-device pages of raw rows, the `MetricsService` queries that no rollup serves: a device's
 * state changes (`GetDeviceStateHistory`) and its stored metric samples (`GetDeviceMetrics`).
 * Newest first, keyset-paged (the cursors travel in `page-token.ts`'s tokens), each page one range
 * scan of an index that leads with the device.
 */
import type { SqlRunner } from "../db/sql-runner.js";
import { Params } from "./sql-params.js";

/** One stored state change. */
export interface DeviceStateChangeRow {
  readonly id: string;
  readonly deviceId: string;
  readonly previousState: string | null;
  readonly newState: string;
  readonly changedBy: string;
  readonly reason: string | null;
  readonly extraData: Record<string, unknown> | null;
  /** Epoch microseconds (PostgreSQL's precision), for exact timestamps and cursors. */
  readonly occurredAtUs: bigint;
}

/** Where a page of state history continues: strictly older than `(beforeUs, beforeId)`. */
export interface StateHistoryCursor {
  readonly beforeUs: bigint;
  readonly beforeId: string;
}

/** One stored metric sample. */
export interface DeviceMetricSampleRow {
  /** Epoch microseconds (PostgreSQL's precision), for exact timestamps and cursors. */
  readonly occurredAtUs: bigint;
  readonly metrics: Record<string, number>;
  readonly reason: string;
}

/** The per-device queries; part of `MetricsQueries`. */
export interface DeviceQueries {
  /**
   * One device's changes in `[startUs, endUs]`, newest first, `limit` at most, continuing after
   * `cursor`. Raw rows only: state history has no rollup.
   */
  deviceStateHistory(args: {
    deviceId: string;
    startUs: bigint;
    endUs: bigint;
    limit: number;
    cursor?: StateHistoryCursor | undefined;
  }): Promise<DeviceStateChangeRow[]>;
  /**
   * One device's metric samples in `[startUs, endUs]`, newest first, `limit` at most, strictly
   * older than `beforeUs` when given (`occurred_at` is unique per device).
   */
  deviceMetrics(args: {
    deviceId: string;
    startUs: bigint;
    endUs: bigint;
    limit: number;
    beforeUs?: bigint | undefined;
  }): Promise<DeviceMetricSampleRow[]>;
}

/** Creates the per-device queries over `pool`. */
export function createDeviceQueries(pool: SqlRunner): DeviceQueries {
  return {
    async deviceStateHistory({ deviceId, startUs, endUs, limit, cursor }) {
      const q = new Params();
      const at = (us: bigint) => `timestamptz 'epoch' + ${q.add(String(us))}::bigint * interval '1 microsecond'`;
      let sql =
        `select "id", "device_id", "previous_state", "new_state", "changed_by", "reason", "extra_data", ` +
        `(extract(epoch from "occurred_at") * 1000000)::bigint::text as us ` +
        `from "device_state_history" where "device_id" = ${q.add(deviceId)} ` +
        `and "occurred_at" >= ${at(startUs)} and "occurred_at" <= ${at(endUs)}`;
      if (cursor) sql += ` and ("occurred_at", "id") < (${at(cursor.beforeUs)}, ${q.add(cursor.beforeId)}::uuid)`;
      sql += ` order by "occurred_at" desc, "id" desc limit ${q.add(limit)}`;
      type Row = {
        id: string;
        device_id: string;
        previous_state: string | null;
        new_state: string;
        changed_by: string;
        reason: string | null;
        extra_data: Record<string, unknown> | null;
        us: string;
      };
      const rows = await pool.query<Row>(sql, q.values);
      return rows.map((r) => ({
        id: r.id,
        deviceId: r.device_id,
        previousState: r.previous_state,
        newState: r.new_state,
        changedBy: r.changed_by,
        reason: r.reason,
        extraData: r.extra_data,
        occurredAtUs: BigInt(r.us),
      }));
    },

    async deviceMetrics({ deviceId, startUs, endUs, limit, beforeUs }) {
      const q = new Params();
      const at = (us: bigint) => `timestamptz 'epoch' + ${q.add(String(us))}::bigint * interval '1 microsecond'`;
      let sql =
        `select (extract(epoch from "occurred_at") * 1000000)::bigint::text as "us", "metrics", "reason" ` +
        `from "device_metrics" where "device_id" = ${q.add(deviceId)} ` +
        `and "occurred_at" >= ${at(startUs)} ` +
        `and "occurred_at" <= ${at(endUs)}`;
      if (beforeUs !== undefined) sql += ` and "occurred_at" < ${at(beforeUs)}`;
      sql += ` order by "occurred_at" desc limit ${q.add(limit)}`;
      const rows = await pool.query<{ us: string; metrics: Record<string, number>; reason: string }>(sql, q.values);
      return rows.map((r) => ({ occurredAtUs: BigInt(r.us), metrics: r.metrics, reason: r.reason }));
    },
  };
}
