/**
 * The typed MetricsService client (admin queries), with paging helpers that walk every page.
 * Answers are plain values (counts as numbers, times as `Date`s; see {@link Plain}), so they can
 * be logged, compared and sent on as JSON. Platform-neutral.
 *
 * @module
 */
import type { DescMessage, Message, MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import {
  GetApiPerformanceResponseSchema,
  GetDeviceMetricsResponseSchema,
  GetDeviceStateHistoryResponseSchema,
  GetErrorTrendsResponseSchema,
  GetJobOutcomesResponseSchema,
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
import { toPlain, type Plain } from "./plain-answer.js";

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
  getApiPerformance(input?: MessageInitShape<typeof GetApiPerformanceRequestSchema>, options?: CallOptions): Promise<Plain<GetApiPerformanceResponse>>;
  /** Outcome counts, success rate and mean durations per job type. */
  getJobOutcomes(input?: MessageInitShape<typeof GetJobOutcomesRequestSchema>, options?: CallOptions): Promise<Plain<GetJobOutcomesResponse>>;
  /** Error counts per category and severity, with an hourly timeline. */
  getErrorTrends(input?: MessageInitShape<typeof GetErrorTrendsRequestSchema>, options?: CallOptions): Promise<Plain<GetErrorTrendsResponse>>;
  /** One page of a device's state changes, newest first. */
  getDeviceStateHistory(
    input: MessageInitShape<typeof GetDeviceStateHistoryRequestSchema>,
    options?: CallOptions,
  ): Promise<Plain<GetDeviceStateHistoryResponse>>;
  /** One page of a device's stored metric samples, newest first. */
  getDeviceMetrics(input: MessageInitShape<typeof GetDeviceMetricsRequestSchema>, options?: CallOptions): Promise<Plain<GetDeviceMetricsResponse>>;
  /** Every state change of the window, page after page (`pageSize` sets the page size). */
  listDeviceStateHistory(input: MessageInitShape<typeof GetDeviceStateHistoryRequestSchema>, options?: CallOptions): AsyncIterable<Plain<DeviceStateChange>>;
  /** Every stored sample of the window, page after page (`pageSize` sets the page size). */
  listDeviceMetrics(input: MessageInitShape<typeof GetDeviceMetricsRequestSchema>, options?: CallOptions): AsyncIterable<Plain<StoredMetricSample>>;
  /** The generated client underneath: answers as generated messages (counts as `bigint`). */
  readonly raw: Client<typeof MetricsService>;
}

/** Runs a call, its error as a `ConnectError`, its answer as a plain value of `schema`. */
async function call<T extends Message>(schema: DescMessage, run: () => Promise<T>): Promise<Plain<T>> {
  let answer: T;
  try {
    answer = await run();
  } catch (err) {
    throw ConnectError.from(err);
  }
  return toPlain(schema, answer);
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
    getApiPerformance: (input = {}, o) => call(GetApiPerformanceResponseSchema, () => raw.getApiPerformance(input, opts(o))),
    getJobOutcomes: (input = {}, o) => call(GetJobOutcomesResponseSchema, () => raw.getJobOutcomes(input, opts(o))),
    getErrorTrends: (input = {}, o) => call(GetErrorTrendsResponseSchema, () => raw.getErrorTrends(input, opts(o))),
    getDeviceStateHistory: (input, o) => call(GetDeviceStateHistoryResponseSchema, () => raw.getDeviceStateHistory(input, opts(o))),
    getDeviceMetrics: (input, o) => call(GetDeviceMetricsResponseSchema, () => raw.getDeviceMetrics(input, opts(o))),
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
