import type { MigrationObject } from "@mikro-orm/core";
import { Migration20261128110858_initial } from "./Migration20261128110858_initial.js";
import { Migration20261128112046_error_event_receipts } from "./Migration20261128112046_error_event_receipts.js";
import { Migration20261128113255_rollups } from "./Migration20261128113255_rollups.js";
import { Migration20261128113939_retention_indexes } from "./Migration20261128113939_retention_indexes.js";
import { Migration20261128115556_api_rollup_5min } from "./Migration20261128115556_api_rollup_5min.js";

/**
 * Every migration, in order. `npm run cli -- migration:create NAME` writes a new file next to this
 * one from the difference between the entities and the database; add it here.
 */
export const MIGRATIONS: MigrationObject[] = [
  { name: "Migration20261128110858_initial", class: Migration20261128110858_initial },
  { name: "Migration20261128112046_error_event_receipts", class: Migration20261128112046_error_event_receipts },
  { name: "Migration20261128113255_rollups", class: Migration20261128113255_rollups },
  { name: "Migration20261128113939_retention_indexes", class: Migration20261128113939_retention_indexes },
  { name: "Migration20261128115556_api_rollup_5min", class: Migration20261128115556_api_rollup_5min },
];
