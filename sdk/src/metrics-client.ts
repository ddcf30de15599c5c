/**
 * The typed MetricsService client (admin queries), with paging helpers that walk every page.
 * Platform-neutral.
 *
 * @module
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import {
  MetricsService,
  type DeviceStateChange,
  type GetApiPerformanceRequestSchema,
  type GetApiPerformanceResponse,
  type GetDeviceMetricsRequestSchema,
  type GetDeviceMetricsResponse,
  type GetDeviceStateHistoryRequestSchema,
  type GetDeviceStateHistoryResponse,
  type GetErrorTrendsRequestSchema,
  type GetErrorTrendsResponse,
  type GetJobOutcomesRequestSchema,
  type GetJobOutcomesResponse,
  type StoredMetricSample,
} from "./gen/analytics/v1/metrics_service_pb.js";

/** Options of {@link createMetricsClient}. */
export interface MetricsClientOptions {
  /** Options for every call (e.g. `{ timeoutMs: 10_000 }`); options given to a call win. */
  readonly callOptions?: CallOptions;
}

/**
 * The MetricsService, typed (admin principals only). Windows are `[now - hours, now]` on the
 * server's clock; `hours` defaults to 24. Every method rejects with a `ConnectError`.
 */
export interface MetricsClient {
  /** Request counts, errors and latency percentiles per endpoint, busiest first. */
  getApiPerformance(input?: MessageInitShape<typeof GetApiPerformanceRequestSchema>, options?: CallOptions): Promise<GetApiPerformanceResponse>;
  /** Outcome counts, success rate and mean durations per job type. */
  getJobOutcomes(input?: MessageInitShape<typeof GetJobOutcomesRequestSchema>, options?: CallOptions): Promise<GetJobOutcomesResponse>;
  /** Error counts per category and severity, with an hourly timeline. */
  getErrorTrends(input?: MessageInitShape<typeof GetErrorTrendsRequestSchema>, options?: CallOptions): Promise<GetErrorTrendsResponse>;
  /** One page of a device's state changes, newest first. */
  getDeviceStateHistory(
    input: MessageInitShape<typeof GetDeviceStateHistoryRequestSchema>,
    options?: CallOptions,
  ): Promise<GetDeviceStateHistoryResponse>;
  /** One page of a device's stored metric samples, newest first. */
  getDeviceMetrics(input: MessageInitShape<typeof GetDeviceMetricsRequestSchema>, options?: CallOptions): Promise<GetDeviceMetricsResponse>;
  /** Every state change of the window, page after page (`pageSize` sets the page size). */
  listDeviceStateHistory(input: MessageInitShape<typeof GetDeviceStateHistoryRequestSchema>, options?: CallOptions): AsyncIterable<DeviceStateChange>;
  /** Every stored sample of the window, page after page (`pageSize` sets the page size). */
  listDeviceMetrics(input: MessageInitShape<typeof GetDeviceMetricsRequestSchema>, options?: CallOptions): AsyncIterable<StoredMetricSample>;
  /** The generated client underneath. */
  readonly raw: Client<typeof MetricsService>;
}

async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw ConnectError.from(err);
  }
}

/**
 * Creates the typed MetricsService client.
 *
 * ```ts
 * const metrics = createMetricsClient(createNodeTransport({ baseUrl, token: adminToken }));
 * const { endpoints } = await metrics.getApiPerformance({ hours: 6 });
 * for await (const change of metrics.listDeviceStateHistory({ deviceId: "device-123", hours: 72 })) console.log(change.newState);
 * ```
 */
export function createMetricsClient(transport: Transport, options: MetricsClientOptions = {}): MetricsClient {
  const raw = createClient(MetricsService, transport);
  const opts = (o: CallOptions | undefined): CallOptions => ({ ...options.callOptions, ...o });
  const client: MetricsClient = {
    raw,
    getApiPerformance: (input = {}, o) => call(() => raw.getApiPerformance(input, opts(o))),
    getJobOutcomes: (input = {}, o) => call(() => raw.getJobOutcomes(input, opts(o))),
    getErrorTrends: (input = {}, o) => call(() => raw.getErrorTrends(input, opts(o))),
    getDeviceStateHistory: (input, o) => call(() => raw.getDeviceStateHistory(input, opts(o))),
    getDeviceMetrics: (input, o) => call(() => raw.getDeviceMetrics(input, opts(o))),
    async *listDeviceStateHistory(input, o) {
      let pageToken = input.pageToken ?? "";
      do {
        const page = await client.getDeviceStateHistory({ ...input, pageToken }, o);
        yield* page.changes;
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
    },
    async *listDeviceMetrics(input, o) {
      let pageToken = input.pageToken ?? "";
      do {
        const page = await client.getDeviceMetrics({ ...input, pageToken }, o);
        yield* page.samples;
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
    },
  };
  return client;
}
