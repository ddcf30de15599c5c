import { Migration } from '@mikro-orm/migrations';

/** The six event tables with their time-window and event_id indexes. */

export class Migration20261128110858_initial extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create table "api_request_logs" ("id" bigserial primary key, "occurred_at" timestamptz not null, "endpoint" text not null, "protocol" text not null, "http_method" text not null, "status_code" smallint not null, "http_status" smallint not null, "response_time_ms" double precision not null, "user_id" text null, "client_ip" text null, "user_agent" text null, "request_bytes" int not null default 0, "response_bytes" int not null default 0, "request_messages" int not null default 1, "response_messages" int not null default 1, "error_message" text null);`);
    this.addSql(`create index "api_request_logs_occurred_at_idx" on "api_request_logs" ("occurred_at");`);
    this.addSql(`create index "api_request_logs_endpoint_occurred_at_idx" on "api_request_logs" ("endpoint", "occurred_at");`);

    this.addSql(`create table "device_metrics" ("device_id" text not null, "occurred_at" timestamptz not null, "metrics" jsonb not null, "reason" text not null, "received_at" timestamptz not null default now(), constraint "device_metrics_pkey" primary key ("device_id", "occurred_at"));`);

    this.addSql(`create table "device_state_history" ("id" uuid not null, "event_id" uuid null, "occurred_at" timestamptz not null, "received_at" timestamptz not null default now(), "device_id" text not null, "previous_state" text null, "new_state" text not null, "changed_by" text not null, "reason" text null, "extra_data" jsonb null, constraint "device_state_history_pkey" primary key ("id"));`);
    this.addSql(`create index "device_state_history_device_id_occurred_at_id_idx" on "device_state_history" ("device_id", "occurred_at", "id");`);
    this.addSql(`create unique index "device_state_history_event_id_key" on "device_state_history" ("event_id") where "event_id" is not null;`);

    this.addSql(`create table "error_logs" ("id" uuid not null, "event_id" uuid null, "occurred_at" timestamptz not null, "received_at" timestamptz not null default now(), "category" text not null, "severity" text not null, "error_code" text null, "error_message" text not null, "stack_trace" text null, "endpoint" text null, "device_id" text null, "user_id" text null, "context" jsonb null, "dedup_key" text not null, "occurrence_count" int not null default 1, "last_seen_at" timestamptz not null, "resolved" boolean not null default false, "resolved_at" timestamptz null, "regressed" boolean not null default false, constraint "error_logs_pkey" primary key ("id"));`);
    this.addSql(`create index "error_logs_occurred_at_idx" on "error_logs" ("occurred_at");`);
    this.addSql(`create index "error_logs_category_occurred_at_idx" on "error_logs" ("category", "occurred_at");`);
    this.addSql(`create index "error_logs_dedup_key_last_seen_at_idx" on "error_logs" ("dedup_key", "last_seen_at");`);
    this.addSql(`create unique index "error_logs_event_id_key" on "error_logs" ("event_id") where "event_id" is not null;`);

    this.addSql(`create table "job_outcomes" ("id" uuid not null, "event_id" uuid null, "occurred_at" timestamptz not null, "received_at" timestamptz not null default now(), "job_id" text not null, "job_type" text not null, "status" text not null, "device_id" text null, "duration_ms" int null, "error_code" text null, "error_message" text null, "retry_count" int not null default 0, "initiated_by" text null, "extra_data" jsonb null, constraint "job_outcomes_pkey" primary key ("id"));`);
    this.addSql(`create index "job_outcomes_occurred_at_idx" on "job_outcomes" ("occurred_at");`);
    this.addSql(`create index "job_outcomes_job_type_occurred_at_idx" on "job_outcomes" ("job_type", "occurred_at");`);
    this.addSql(`create unique index "job_outcomes_event_id_key" on "job_outcomes" ("event_id") where "event_id" is not null;`);

    this.addSql(`create table "user_activities" ("id" uuid not null, "event_id" uuid null, "occurred_at" timestamptz not null, "received_at" timestamptz not null default now(), "user_id" text null, "activity_type" text not null, "page_url" text null, "element_id" text null, "search_query" text null, "session_id" text null, "duration_ms" int null, "extra_data" jsonb null, constraint "user_activities_pkey" primary key ("id"));`);
    this.addSql(`create index "user_activities_occurred_at_idx" on "user_activities" ("occurred_at");`);
    this.addSql(`create index "user_activities_user_id_occurred_at_idx" on "user_activities" ("user_id", "occurred_at");`);
    this.addSql(`create unique index "user_activities_event_id_key" on "user_activities" ("event_id") where "event_id" is not null;`);
  }


  override async down(): Promise<void> {
    for (const table of ["user_activities", "job_outcomes", "error_logs", "device_state_history", "device_metrics", "api_request_logs"]) {
      this.addSql(`drop table if exists "${table}";`);
    }
  }

}
