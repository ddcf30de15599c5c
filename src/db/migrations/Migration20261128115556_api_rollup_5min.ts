import { Migration } from '@mikro-orm/migrations';

/**
 * 5-minute API rollups (see `src/db/entities/rollups.ts`), backfilled from the raw rows of the last
 * 8 days (their retention) with a snapshot of the builder (then in `src/rollups/rollups.ts`, now in
 * `src/rollups/rollup-sql.ts`).
 */
export class Migration20261128115556_api_rollup_5min extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create table "api_rollup_5min" ("minute" timestamptz not null, "endpoint" text not null, "request_count" bigint not null, "error_count" bigint not null, "sum_ms" double precision not null, "min_ms" double precision not null, "max_ms" double precision not null, "first_bucket" smallint not null, "bucket_counts" bigint[] not null, constraint "api_rollup_5min_pkey" primary key ("minute", "endpoint"));`);
    this.addSql(`with src as (select endpoint, occurred_at, status_code, response_time_ms from "api_request_logs" where occurred_at >= date_trunc('day', now(), 'UTC') - interval '8 days'), agg as (select date_bin('5 minutes', occurred_at, timestamptz '2000-01-01 00:00:00+00') as period, endpoint, count(*) as request_count, count(*) filter (where status_code <> 0) as error_count, sum(response_time_ms) as sum_ms, min(response_time_ms) as min_ms, max(response_time_ms) as max_ms from src group by 1, 2), pts as (select date_bin('5 minutes', occurred_at, timestamptz '2000-01-01 00:00:00+00') as period, endpoint, (CASE WHEN (response_time_ms)::double precision >= 0.001::double precision THEN least(32767, greatest(1, ceil(ln((response_time_ms)::double precision) / 0.01980262729617973::double precision) + 349)) ELSE 0 END)::smallint as bucket, count(*) as n from src group by 1, 2, 3), hist as (select period, endpoint, lo as first_bucket, (select array_agg(coalesce(s.n, 0)::int8 order by g.b) from generate_series(lo, hi) as g(b) left join unnest(bs, ns) as s(b, n) on s.b = g.b) as bucket_counts from (select period, endpoint, min(bucket)::int as lo, max(bucket)::int as hi, array_agg(bucket::int) as bs, array_agg(n::int8) as ns from pts group by 1, 2) r) insert into "api_rollup_5min" as t ("minute", "endpoint", "request_count", "error_count", "sum_ms", "min_ms", "max_ms", "first_bucket", "bucket_counts") select a.period, a.endpoint, a.request_count, a.error_count, a.sum_ms, a.min_ms, a.max_ms, h.first_bucket, h.bucket_counts from agg a join hist h on h.period = a.period and h.endpoint = a.endpoint order by a.period, a.endpoint on conflict ("minute", "endpoint") do update set "request_count" = t."request_count" + excluded."request_count", "error_count" = t."error_count" + excluded."error_count", "sum_ms" = t."sum_ms" + excluded."sum_ms", "min_ms" = least(t."min_ms", excluded."min_ms"), "max_ms" = greatest(t."max_ms", excluded."max_ms"), "first_bucket" = least(t."first_bucket", excluded."first_bucket"), "bucket_counts" = (select array_agg(coalesce(t."bucket_counts"[g.b - t."first_bucket" + 1], 0) + coalesce(excluded."bucket_counts"[g.b - excluded."first_bucket" + 1], 0) order by g.b) from generate_series(least(t."first_bucket", excluded."first_bucket")::int, greatest(t."first_bucket" + cardinality(t."bucket_counts"), excluded."first_bucket" + cardinality(excluded."bucket_counts")) - 1) as g(b));`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "api_rollup_5min" cascade;`);
  }

}
