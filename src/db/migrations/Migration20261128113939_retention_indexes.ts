import { Migration } from '@mikro-orm/migrations';

/**
 * Time indexes for the retention job on the two tables whose indexes lead with the device: BRIN,
 * because rows arrive roughly in time order and a BRIN index costs almost nothing to maintain.
 */
export class Migration20261128113939_retention_indexes extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create index "device_metrics_occurred_at_brin" on "device_metrics" using brin ("occurred_at");`);

    this.addSql(`create index "device_state_history_occurred_at_brin" on "device_state_history" using brin ("occurred_at");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index "device_metrics_occurred_at_brin";`);

    this.addSql(`drop index "device_state_history_occurred_at_brin";`);
  }

}
