/** Every MikroORM entity of the service, for the ORM config and the migration generator. */
import { ApiRequestLogEntity } from "./api-request-log.js";
import { DeviceMetricEntity } from "./device-metric.js";
import { DeviceStateChangeEntity } from "./device-state-change.js";
import { ErrorEventReceiptEntity } from "./error-event-receipt.js";
import { ErrorLogEntity } from "./error-log.js";
import { JobOutcomeEntity } from "./job-outcome.js";
import {
  ApiRollup5MinEntity,
  ApiRollupDailyEntity,
  ApiRollupHourlyEntity,
  ErrorOccurrenceEntity,
  ErrorRollupHourlyEntity,
  JobRollupHourlyEntity,
  RetentionWatermarkEntity,
} from "./rollups.js";
import { UserActivityEntity } from "./user-activity.js";

export { ApiRequestLogEntity, DeviceMetricEntity, DeviceStateChangeEntity, ErrorEventReceiptEntity, ErrorLogEntity, JobOutcomeEntity, UserActivityEntity };
export { ApiRollup5MinEntity, ApiRollupDailyEntity, ApiRollupHourlyEntity, ErrorOccurrenceEntity, ErrorRollupHourlyEntity, JobRollupHourlyEntity, RetentionWatermarkEntity };

/** All entities, in a stable order. */
export const ENTITIES = [
  ApiRequestLogEntity,
  DeviceMetricEntity,
  DeviceStateChangeEntity,
  ErrorEventReceiptEntity,
  ErrorLogEntity,
  JobOutcomeEntity,
  UserActivityEntity,
  ApiRollup5MinEntity,
  ApiRollupHourlyEntity,
  ApiRollupDailyEntity,
  ErrorRollupHourlyEntity,
  ErrorOccurrenceEntity,
  JobRollupHourlyEntity,
  RetentionWatermarkEntity,
] as const;
