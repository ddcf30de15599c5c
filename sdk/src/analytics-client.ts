/**
 * The typed AnalyticsService client: plain-object inputs, client-generated event ids (so every
 * `Log*` call is safe to retry), `Date` or epoch-ms timestamps, and errors that are always
 * `ConnectError`. Platform-neutral: give it any Connect transport (`./node`, `./web`, or
 * `createRouterTransport` in tests).
 *
 * @module
 */
import { create, isMessage, type DescMessage, type DescService, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromDate, timestampFromMs, TimestampSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import {
  AnalyticsService,
  EventSchema,
  LogDeviceStateChangeRequestSchema,
  LogErrorRequestSchema,
  LogEventsRequestSchema,
  LogJobOutcomeRequestSchema,
  LogUserActivityRequestSchema,
  MetricSampleSchema,
  type Event,
  type IngestDeviceMetricsResponse,
  type LogDeviceStateChangeResponse,
  type LogErrorResponse,
  type LogEventsResponse,
  type LogJobOutcomeResponse,
  type LogUserActivityResponse,
  type MetricSample,
  type ResolveErrorRequestSchema,
  type ResolveErrorResponse,
  type StreamDeviceMetricsRequestSchema,
  type StreamDeviceMetricsResponse,
} from "./gen/analytics/v1/analytics_service_pb.js";
import { invalidFieldError } from "./error-details.js";
import { newEventId } from "./event-id.js";
import { isBinaryTransport } from "./wire/binary-transport.js";
import { encodedLogEventsRequest, encodedRequestBytes, logEventsEncodedMethod, type LogEventsRequestWire } from "./wire/log-events-wire.js";

/** A client of `LogEvents` alone, sending pre-encoded events (binary transports only). */
function createEncodedLogEventsClient(transport: Transport): {
  logEvents(request: LogEventsRequestWire, options?: CallOptions): Promise<LogEventsResponse>;
} {
  // The one method as a service of its own: same service name and method, so the same path.
  const service = { ...AnalyticsService, methods: [logEventsEncodedMethod], method: { logEvents: logEventsEncodedMethod } };
  return createClient(service as unknown as DescService, transport) as never;
}

/** The most events one `LogEvents` call may carry (the server refuses more). */
export const MAX_EVENTS_PER_BATCH = 500;

/**
 * A point in time: a `Date`, epoch milliseconds, or a `google.protobuf.Timestamp`
 * (`{ seconds: bigint, nanos: number }`).
 */
export type TimeInput = Date | number | MessageInitShape<typeof TimestampSchema>;

/** A request init whose `occurredAt` may also be a `Date` or epoch milliseconds. */
export type WithTimeInput<T> = Omit<T, "occurredAt" | "$typeName"> & { readonly occurredAt?: TimeInput };

/** A `LogUserActivity` event: `activityType` required; see `LogUserActivityRequest`. */
export type UserActivityInput = WithTimeInput<MessageInitShape<typeof LogUserActivityRequestSchema>>;
/** A `LogError` event: `errorMessage` required; see `LogErrorRequest`. */
export type ErrorInput = WithTimeInput<MessageInitShape<typeof LogErrorRequestSchema>>;
/** A `LogDeviceStateChange` event: `deviceId` and `newState` required. */
export type DeviceStateChangeInput = WithTimeInput<MessageInitShape<typeof LogDeviceStateChangeRequestSchema>>;
/** A `LogJobOutcome` event: `jobId`, `jobType` and `status` required. */
export type JobOutcomeInput = WithTimeInput<MessageInitShape<typeof LogJobOutcomeRequestSchema>>;

/**
 * One event of a `LogEvents` batch, named by its kind, or an already built `Event` message.
 *
 * ```ts
 * [{ error: { errorMessage: "disk full" } }, { jobOutcome: { jobId: "j1", jobType: "backup", status: JobStatus.SUCCESS } }]
 * ```
 */
export type EventInput =
  | { readonly userActivity: UserActivityInput }
  | { readonly error: ErrorInput }
  | { readonly deviceStateChange: DeviceStateChangeInput }
  | { readonly jobOutcome: JobOutcomeInput }
  | Event;

/** One metric sample; `occurredAt` is required (the filter decides by the sample's own time). */
export interface MetricSampleInput {
  readonly occurredAt: TimeInput;
  readonly metrics: Readonly<Record<string, number>>;
}

/** An `IngestDeviceMetrics` batch: up to 1000 samples of one device. */
export interface IngestDeviceMetricsInput {
  readonly deviceId: string;
  readonly samples: readonly MetricSampleInput[];
}

/** How events are completed before they are sent; see {@link AnalyticsClientOptions}. */
export interface EventDefaults {
  /**
   * Fill an empty `eventId` with a new UUIDv7 (default `true`). The server stores an event id
   * once, so a retried call (by the transport, a queue or your own code) never stores twice.
   */
  readonly generateEventIds?: boolean;
  /**
   * Stamp an absent `occurredAt` with the client's clock (default `false`: the server stamps its
   * own time on arrival, which is right for a direct call and immune to wrong client clocks). The
   * queueing loggers turn this on, because their events reach the server later than they happen.
   */
  readonly clientTimestamps?: boolean;
  /** The clock for ids and timestamps, epoch ms (default `Date.now`). */
  readonly now?: () => number;
}

/** Options of {@link createAnalyticsClient}. */
export interface AnalyticsClientOptions extends EventDefaults {
  /** Options for every call (e.g. `{ timeoutMs: 5000 }`); options given to a call win. */
  readonly callOptions?: CallOptions;
  /**
   * Encode `LogEvents` batches with the compiled encoder over a binary transport (default true;
   * `sdk/src/wire/README.md`). False: protobuf-es's `toBinary`, for diagnosing a suspected encoder bug.
   */
  readonly wireFastPath?: boolean;
  /**
   * The server's message cap (`ANALYTICS_MAX_MESSAGE_BYTES`, default 4 MiB): a pre-encoded
   * `LogEvents` batch larger than this is refused here, with `ResourceExhausted`, without sending
   * it (the server would refuse it after reading up to this much, and Node's HTTP/2 client loses
   * part of its session's memory budget for good when an upload is cut short).
   */
  readonly maxMessageBytes?: number;
}

/** The server's default message cap (`ANALYTICS_MAX_MESSAGE_BYTES`). */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * The AnalyticsService, typed. Every method returns the response message or rejects with a
 * `ConnectError` (its `code` says what went wrong, e.g. `InvalidArgument` naming the field;
 * `fieldViolationsOf(err)` lists the fields).
 */
export interface AnalyticsClient {
  /** Records one user interaction. */
  logUserActivity(input: UserActivityInput, options?: CallOptions): Promise<LogUserActivityResponse>;
  /** Records one error (de-duplicated by the server within its interval). */
  logError(input: ErrorInput, options?: CallOptions): Promise<LogErrorResponse>;
  /** Records a device state transition (service or admin principals). */
  logDeviceStateChange(input: DeviceStateChangeInput, options?: CallOptions): Promise<LogDeviceStateChangeResponse>;
  /** Records how a job ended (service or admin principals). */
  logJobOutcome(input: JobOutcomeInput, options?: CallOptions): Promise<LogJobOutcomeResponse>;
  /**
   * Records 1 to 500 events in one call; `results[i]` says what happened to `events[i]` (an
   * invalid event is `REJECTED` with its violations, the others are stored).
   *
   * @returns rejects with `InvalidArgument` (without calling) for an empty or oversized batch.
   */
  logEvents(events: readonly EventInput[], options?: CallOptions): Promise<LogEventsResponse>;
  /** Sends one batch of a device's metric samples through the server's filter. */
  ingestDeviceMetrics(input: IngestDeviceMetricsInput, options?: CallOptions): Promise<IngestDeviceMetricsResponse>;
  /**
   * The raw bidirectional device stream. Prefer `createMetricsStreamer` from `./device`, which
   * numbers batches, resends what was not acknowledged and reconnects.
   */
  streamDeviceMetrics(
    requests: AsyncIterable<MessageInitShape<typeof StreamDeviceMetricsRequestSchema>>,
    options?: CallOptions,
  ): AsyncIterable<StreamDeviceMetricsResponse>;
  /** Marks a stored error resolved or unresolved (admin). */
  resolveError(input: MessageInitShape<typeof ResolveErrorRequestSchema>, options?: CallOptions): Promise<ResolveErrorResponse>;
  /** The generated client underneath, for anything the wrappers do not cover. */
  readonly raw: Client<typeof AnalyticsService>;
}

/** A `google.protobuf.Timestamp` from a {@link TimeInput}. */
export function toTimestamp(time: TimeInput): Timestamp {
  if (time instanceof Date) return timestampFromDate(time);
  if (typeof time === "number") return timestampFromMs(time);
  return isMessage(time, TimestampSchema) ? time : create(TimestampSchema, time);
}

interface EventFields {
  eventId: string;
  occurredAt?: Timestamp;
}

function completeRequest<S extends DescMessage>(
  schema: S,
  input: { readonly occurredAt?: TimeInput },
  defaults: EventDefaults,
): MessageShape<S> & EventFields {
  const { occurredAt, ...rest } = input as { occurredAt?: TimeInput; $typeName?: string };
  delete rest.$typeName;
  const message = create(schema, rest as MessageInitShape<S>) as MessageShape<S> & EventFields;
  const now = defaults.now ?? Date.now;
  if (message.eventId === "" && defaults.generateEventIds !== false) message.eventId = newEventId(now());
  const at = occurredAt ?? (defaults.clientTimestamps === true ? now() : undefined);
  if (at !== undefined) message.occurredAt = toTimestamp(at);
  return message;
}

/**
 * Builds the `Event` message of one {@link EventInput}, with an event id (unless
 * `generateEventIds: false`) and, with `clientTimestamps: true`, an `occurredAt`. Queues call it
 * when an event is recorded, so that every later retry sends the same id and time.
 *
 * @throws ConnectError `InvalidArgument` when the input names no kind.
 */
export function toEvent(input: EventInput, defaults: EventDefaults = {}): Event {
  if ("$typeName" in input && "kind" in input) {
    const kind = input.kind;
    if (kind.case === undefined) throw noEventKind();
    const schema = {
      userActivity: LogUserActivityRequestSchema,
      error: LogErrorRequestSchema,
      deviceStateChange: LogDeviceStateChangeRequestSchema,
      jobOutcome: LogJobOutcomeRequestSchema,
    }[kind.case];
    const value = completeRequest(schema, kind.value, defaults);
    return create(EventSchema, { kind: { case: kind.case, value } as Event["kind"] });
  }
  if ("userActivity" in input) return create(EventSchema, { kind: { case: "userActivity", value: completeRequest(LogUserActivityRequestSchema, input.userActivity, defaults) } });
  if ("error" in input) return create(EventSchema, { kind: { case: "error", value: completeRequest(LogErrorRequestSchema, input.error, defaults) } });
  if ("deviceStateChange" in input) {
    return create(EventSchema, { kind: { case: "deviceStateChange", value: completeRequest(LogDeviceStateChangeRequestSchema, input.deviceStateChange, defaults) } });
  }
  if ("jobOutcome" in input) return create(EventSchema, { kind: { case: "jobOutcome", value: completeRequest(LogJobOutcomeRequestSchema, input.jobOutcome, defaults) } });
  throw noEventKind();
}

function noEventKind(): ConnectError {
  return invalidFieldError("event: one of userActivity, error, deviceStateChange, jobOutcome is required", "kind", "is required");
}

/** The event id of an `Event` message ("" when it has none). */
export function eventIdOf(event: Event): string {
  return event.kind.value?.eventId ?? "";
}

/** Runs a call, turning anything it throws into a `ConnectError`. */
async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw ConnectError.from(err);
  }
}

function toSample(sample: MetricSampleInput): MetricSample {
  return create(MetricSampleSchema, { occurredAt: toTimestamp(sample.occurredAt), metrics: { ...sample.metrics } });
}

/**
 * Creates the typed AnalyticsService client.
 *
 * ```ts
 * import { createAnalyticsClient, ErrorCategory } from "@fleet/analytics-sdk";
 * import { createNodeTransport } from "@fleet/analytics-sdk/node";
 *
 * const analytics = createAnalyticsClient(createNodeTransport({ baseUrl: "http://localhost:8080", token }));
 * const { id, outcome } = await analytics.logError({ category: ErrorCategory.API, errorMessage: "upstream timed out" });
 * ```
 *
 * Defaults: each event gets a client-generated `eventId` (UUIDv7) when it has none, so retries
 * are idempotent; `occurredAt` is left to the server's clock unless given (or
 * `clientTimestamps: true`).
 */
export function createAnalyticsClient(transport: Transport, options: AnalyticsClientOptions = {}): AnalyticsClient {
  const raw = createClient(AnalyticsService, transport);
  // Over a binary transport (the SDK's Node and device transports), LogEvents sends events encoded
  // by the compiled encoder, a fraction of protobuf-es's CPU (docs/BENCHMARKS.md#measured-choices-in-the-code).
  const encoded = options.wireFastPath !== false && isBinaryTransport(transport) ? createEncodedLogEventsClient(transport) : undefined;
  const opts = (o: CallOptions | undefined): CallOptions => ({ ...options.callOptions, ...o });
  return {
    raw,
    logUserActivity: (input, o) => call(() => raw.logUserActivity(completeRequest(LogUserActivityRequestSchema, input, options), opts(o))),
    logError: (input, o) => call(() => raw.logError(completeRequest(LogErrorRequestSchema, input, options), opts(o))),
    logDeviceStateChange: (input, o) =>
      call(() => raw.logDeviceStateChange(completeRequest(LogDeviceStateChangeRequestSchema, input, options), opts(o))),
    logJobOutcome: (input, o) => call(() => raw.logJobOutcome(completeRequest(LogJobOutcomeRequestSchema, input, options), opts(o))),
    logEvents: (events, o) =>
      call(async () => {
        if (events.length === 0 || events.length > MAX_EVENTS_PER_BATCH) {
          const problem = `must hold 1 to ${MAX_EVENTS_PER_BATCH} events (got ${events.length})`;
          throw invalidFieldError(`invalid request: events: ${problem}`, "events", problem);
        }
        const complete = events.map((e) => toEvent(e, options));
        if (encoded) {
          const request = encodedLogEventsRequest(complete);
          const bytes = encodedRequestBytes(request);
          const cap = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
          if (bytes > cap) {
            throw new ConnectError(`LogEvents batch of ${events.length} events is ${bytes} bytes, over the ${cap}-byte message cap: send fewer events per call`, Code.ResourceExhausted);
          }
          return encoded.logEvents(request, opts(o));
        }
        return raw.logEvents(create(LogEventsRequestSchema, { events: complete }), opts(o));
      }),
    ingestDeviceMetrics: (input, o) =>
      call(() => raw.ingestDeviceMetrics({ deviceId: input.deviceId, samples: input.samples.map(toSample) }, opts(o))),
    streamDeviceMetrics: (requests, o) => raw.streamDeviceMetrics(requests, opts(o)),
    resolveError: (input, o) => call(() => raw.resolveError(input, opts(o))),
  };
}
