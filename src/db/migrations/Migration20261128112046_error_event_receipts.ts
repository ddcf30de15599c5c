import { Migration } from '@mikro-orm/migrations';

/** Receipts of LogError event ids, so retried de-duplicated errors are not counted twice. */
export class Migration20261128112046_error_event_receipts extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create table "error_event_receipts" ("event_id" uuid not null, "error_id" uuid not null, "outcome" text not null, "occurrence_count" int not null, "regressed" boolean not null, "created_at" timestamptz not null default now(), constraint "error_event_receipts_pkey" primary key ("event_id"));`);
    this.addSql(`create index "error_event_receipts_created_at_idx" on "error_event_receipts" ("created_at");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "error_event_receipts" cascade;`);
  }

}
