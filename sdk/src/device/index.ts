/**
 * `@fleet/analytics-sdk/device`: the metrics streamer for Node.js-based devices (gRPC
 * bidirectional stream with acknowledgements, resends and reconnection).
 *
 * @packageDocumentation
 */
export {
  createMetricsStreamer,
  MAX_SAMPLES_PER_BATCH,
  type MetricsAck,
  type MetricsStreamer,
  type MetricsStreamerOptions,
  type MetricsStreamerStats,
} from "./metrics-streamer.js";
