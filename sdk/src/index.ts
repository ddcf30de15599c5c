/**
 * `@fleet/analytics-sdk`: the analytics schema (generated messages, enums and service
 * descriptors) and the platform-neutral typed clients. Pair a client with a transport from
 * `./node` (backends), `./web` (browsers) or any Connect transport.
 *
 * @packageDocumentation
 */
export * from "./gen/analytics/v1/common_pb.js";
export * from "./gen/analytics/v1/analytics_service_pb.js";
export * from "./gen/analytics/v1/metrics_service_pb.js";
export * from "./gen/analytics/v1/error_details_pb.js";
export {
  BadRequestSchema,
  BadRequest_FieldViolationSchema,
  RetryInfoSchema,
  type BadRequest,
  type BadRequest_FieldViolation,
  type RetryInfo,
} from "./gen/google/rpc/error_details_pb.js";
export { fieldViolationsOf, refusedBatchSequence, retryInfoMs } from "./error-details.js";
export {
  createAnalyticsClient,
  eventIdOf,
  MAX_EVENTS_PER_BATCH,
  toEvent,
  toTimestamp,
  type AnalyticsClient,
  type AnalyticsClientOptions,
  type DeviceStateChangeInput,
  type ErrorInput,
  type EventDefaults,
  type EventInput,
  type IngestDeviceMetricsInput,
  type JobOutcomeInput,
  type MetricSampleInput,
  type TimeInput,
  type UserActivityInput,
  type WithTimeInput,
} from "./analytics-client.js";
export { createMetricsClient, type MetricsClient, type MetricsClientOptions } from "./metrics-client.js";
export type { Plain } from "./plain-answer.js";
export { newEventId } from "./event-id.js";
export { createBearerTokenInterceptor, resolveToken, type TokenSource } from "./bearer-token.js";
export {
  backoffMs,
  createRetryInterceptor,
  DEFAULT_RETRY_OPTIONS,
  isIdempotentCall,
  isTransientError,
  RETRY_AFTER_KEY,
  retryDelayMs,
  retryHintMs,
  sleep,
  type RetryOptions,
} from "./retry.js";
export type { BeaconBatch, CloseResult, DropReason, EventQueueStats } from "./event-queue.js";
export { Code, ConnectError } from "@connectrpc/connect";
