/**
 * `@fleet/analytics-sdk/node`: the gRPC transport for backend services (token, deadlines,
 * retries) and the queueing event logger.
 *
 * @packageDocumentation
 */
export { createNodeTransport, type NodeTransportOptions } from "./transport.js";
export { createEventLogger, type EventLogger, type EventLoggerOptions } from "./event-logger.js";
export type { CloseResult, DropReason, EventQueueStats } from "../event-queue.js";
