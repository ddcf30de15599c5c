/**
 * Per-method request size caps, derived from the validation limits rather than picked: a method
 * reads at most the largest request its validation can accept, in whichever encoding is larger
 * (protobuf binary or JSON), and never more than `ANALYTICS_MAX_MESSAGE_BYTES`. Connect enforces
 * a cap while it reads (`readMaxBytes`), before anything is parsed, and answers
 * `ResourceExhausted` naming it. Pure: computed once at start-up from the message descriptors.
 */
import { ScalarType, type DescField, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { MetricsService } from "../../sdk/src/gen/analytics/v1/metrics_service_pb.js";
import { Health } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../../sdk/src/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../sdk/src/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { MAX_EVENTS_PER_BATCH } from "../ingest/log-events.js";
import { MAX_JSON_BYTES } from "../validation/field-rules.js";
import { LIMITS } from "../validation/request-rules.js";

/** Characters of a UUID in its text form (`event_id`, `error_id`: validation accepts only UUIDs). */
const UUID_CHARS = 36;

/**
 * The longest string each field of a capped request accepts, in UTF-16 code units, as its
 * validation rule (`request-rules.ts`) says; keyed `message type.field`. A unit test holds every
 * entry to its rule (the limit passes, one more fails) and every string field to an entry.
 */
export const STRING_LIMITS: Readonly<Record<string, number>> = {
  "analytics.v1.LogUserActivityRequest.page_url": LIMITS.url,
  "analytics.v1.LogUserActivityRequest.element_id": LIMITS.shortText,
  "analytics.v1.LogUserActivityRequest.search_query": LIMITS.shortText,
  "analytics.v1.LogUserActivityRequest.session_id": LIMITS.id,
  "analytics.v1.LogUserActivityRequest.event_id": UUID_CHARS,
  "analytics.v1.LogUserActivityRequest.user_id": LIMITS.id,
  "analytics.v1.LogErrorRequest.error_code": LIMITS.id,
  "analytics.v1.LogErrorRequest.error_message": LIMITS.message,
  "analytics.v1.LogErrorRequest.stack_trace": LIMITS.stackTrace,
  "analytics.v1.LogErrorRequest.endpoint": LIMITS.url,
  "analytics.v1.LogErrorRequest.device_id": LIMITS.id,
  "analytics.v1.LogErrorRequest.event_id": UUID_CHARS,
  "analytics.v1.LogDeviceStateChangeRequest.device_id": LIMITS.id,
  "analytics.v1.LogDeviceStateChangeRequest.previous_state": LIMITS.shortText,
  "analytics.v1.LogDeviceStateChangeRequest.new_state": LIMITS.shortText,
  "analytics.v1.LogDeviceStateChangeRequest.changed_by": LIMITS.shortText,
  "analytics.v1.LogDeviceStateChangeRequest.reason": LIMITS.message,
  "analytics.v1.LogDeviceStateChangeRequest.event_id": UUID_CHARS,
  "analytics.v1.LogJobOutcomeRequest.job_id": LIMITS.id,
  "analytics.v1.LogJobOutcomeRequest.job_type": LIMITS.id,
  "analytics.v1.LogJobOutcomeRequest.device_id": LIMITS.id,
  "analytics.v1.LogJobOutcomeRequest.error_code": LIMITS.id,
  "analytics.v1.LogJobOutcomeRequest.error_message": LIMITS.message,
  "analytics.v1.LogJobOutcomeRequest.initiated_by": LIMITS.shortText,
  "analytics.v1.LogJobOutcomeRequest.event_id": UUID_CHARS,
  "analytics.v1.ResolveErrorRequest.error_id": UUID_CHARS,
};

/** The most items each repeated field of a capped request accepts; keyed like {@link STRING_LIMITS}. */
export const REPEATED_LIMITS: Readonly<Record<string, number>> = {
  "analytics.v1.LogEventsRequest.events": MAX_EVENTS_PER_BATCH,
};

/**
 * Protobuf bytes of a `Struct` per byte of its JSON text (which validation caps at
 * `MAX_JSON_BYTES`). The worst case is a list of one-digit numbers: `0,` is 2 bytes of JSON and
 * 11 of protobuf (list entry tag and length, `number_value` tag, 8-byte double), so 5.5 plus the
 * brackets; 6 bounds every shape (a property test checks it on random JSON).
 */
export const STRUCT_BYTES_PER_JSON_BYTE = 6;

/**
 * Bytes of one field's framing in either encoding: binary tag (2 bytes for field numbers up to
 * 2047) and length (5), or JSON `"name":` and a comma.
 */
const framing = (f: DescField): number => Math.max(2 + 5, f.name.length + 4);

/** Bytes of a string value of `chars` UTF-16 code units: 3 in UTF-8, 6 in JSON as `\uXXXX`, plus quotes. */
const stringBytes = (chars: number): number => 6 * chars + 2;

/** Longest value of a number in either encoding: a 10-byte varint, or e.g. `-1.7976931348623157e+308`. */
const NUMBER_BYTES = 24;
/**
 * Longest `Timestamp`: seconds and nanos as varints with their tags (17 bytes), or the JSON
 * string `"9999-12-31T23:59:59.999999999Z"` (32).
 */
const TIMESTAMP_BYTES = 32;

/** Why a request message's largest size cannot be derived (a field without a known limit). */
export class UnboundedMessageError extends Error {
  override name = "UnboundedMessageError";
}

/**
 * The largest encoding (binary or JSON) of a message whose fields validation accepts: every
 * string at its limit in its widest characters, every `Struct` at its JSON cap, every repeated
 * field at its item limit, one member of each oneof (the largest).
 *
 * @throws UnboundedMessageError for a string, repeated or map field without a known limit.
 */
export function largestValidMessageBytes(message: DescMessage): number {
  let total = 2; // JSON braces
  const oneofs = new Map<unknown, number>();
  for (const f of message.fields) {
    const key = `${message.typeName}.${f.name}`;
    let value: number;
    switch (f.fieldKind) {
      case "scalar":
        if (f.scalar === ScalarType.BYTES) throw new UnboundedMessageError(`${key}: bytes fields have no limit`);
        value = f.scalar === ScalarType.STRING ? stringBytes(limitOf(STRING_LIMITS, key)) : NUMBER_BYTES;
        break;
      case "enum":
        value = Math.max(NUMBER_BYTES, ...f.enum.values.map((v) => v.name.length + 2));
        break;
      case "message":
        value = messageValueBytes(f.message);
        break;
      case "list": {
        const items = limitOf(REPEATED_LIMITS, key);
        const item = f.listKind === "message" ? messageValueBytes(f.message) : f.listKind === "enum" ? NUMBER_BYTES : undefined;
        if (item === undefined) throw new UnboundedMessageError(`${key}: repeated ${f.listKind} fields are not supported`);
        value = items * (framing(f) + item);
        break;
      }
      default:
        throw new UnboundedMessageError(`${key}: map fields are not supported`);
    }
    const bytes = framing(f) + value;
    if (f.oneof === undefined) total += bytes;
    else oneofs.set(f.oneof, Math.max(oneofs.get(f.oneof) ?? 0, bytes));
  }
  for (const bytes of oneofs.values()) total += bytes;
  return total;
}

function limitOf(table: Readonly<Record<string, number>>, key: string): number {
  const limit = table[key];
  if (limit === undefined) throw new UnboundedMessageError(`${key} has no known limit`);
  return limit;
}

function messageValueBytes(message: DescMessage): number {
  switch (message.typeName) {
    case "google.protobuf.Struct":
      return STRUCT_BYTES_PER_JSON_BYTE * MAX_JSON_BYTES;
    case "google.protobuf.Timestamp":
      return TIMESTAMP_BYTES;
    default:
      return largestValidMessageBytes(message);
  }
}

/**
 * Requests of queries, health checks and reflection: ids, names and a page token, far below
 * this. 16 KiB holds a 2048-character endpoint filter even written as `\uXXXX` escapes.
 */
export const QUERY_MESSAGE_BYTES = 16 * 1024;

/** Health checks and reflection requests: a service, file or symbol name. */
export const PROBE_MESSAGE_BYTES = 4 * 1024;

/**
 * The smallest cap: the bound counts no whitespace, which a hand-written or pretty-printed JSON
 * request of a tiny message (`ResolveError`: 268 bytes at most) may well carry.
 */
export const MIN_CAP_BYTES = 1024;

/** The read cap of each procedure, keyed by its path (`/package.Service/Method`). */
export type MessageCaps = ReadonlyMap<string, number>;

/** Options for {@link messageCaps}. */
export interface MessageCapOptions {
  /** The upper bound for every method (`ANALYTICS_MAX_MESSAGE_BYTES`). */
  readonly maxMessageBytes: number;
  /** The per-message cap of the device-metrics stream and ingest (`ANALYTICS_METRICS_MAX_MESSAGE_BYTES`). */
  readonly metricsMessageBytes: number;
}

const pathOf = (service: DescService, method: string) => `/${service.typeName}/${method}`;

/**
 * The cap of every procedure the server serves: the `Log*` calls, `LogEvents` and
 * `ResolveError` their largest valid request ({@link largestValidMessageBytes}); the device
 * metrics calls their per-message cap; queries, health and reflection a small fixed one. Each at
 * least {@link MIN_CAP_BYTES} and at most `maxMessageBytes`.
 */
export function messageCaps(options: MessageCapOptions): MessageCaps {
  const caps = new Map<string, number>();
  const set = (service: DescService, method: string, bytes: number) => caps.set(pathOf(service, method), Math.min(Math.max(bytes, MIN_CAP_BYTES), options.maxMessageBytes));
  for (const m of AnalyticsService.methods) {
    const metrics = m === AnalyticsService.method.streamDeviceMetrics || m === AnalyticsService.method.ingestDeviceMetrics;
    set(AnalyticsService, m.name, metrics ? options.metricsMessageBytes : largestValidMessageBytes(m.input));
  }
  for (const m of MetricsService.methods) set(MetricsService, m.name, QUERY_MESSAGE_BYTES);
  for (const service of [Health, ServerReflectionV1, ServerReflectionV1Alpha]) {
    for (const m of service.methods) set(service, m.name, PROBE_MESSAGE_BYTES);
  }
  return caps;
}
