/**
 * The four unary `Log*` calls in JSON (Connect `application/json`), decoded here instead of by
 * Connect (`json-body-capture.ts`): the body is checked for its nesting depth in one pass, parsed
 * once with `JSON.parse`, and read with its `Struct` payloads kept as `JSON.parse` gave them
 * (`json-structs.ts`), where protobuf-es would rebuild them through `Value` messages: a hostile
 * body at the method's cap held the event loop several times longer in Connect's decoding
 * (docs/HARDENING.md). The result is the request `fromJson` gives; the handlers are unchanged.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AnalyticsService } from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { wellFormedText } from "../errors/error-details.js";
import { invalidArgument } from "../validation/field-rules.js";
import type { JsonRequestDecoder } from "./json-body-capture.js";
import { fromJsonKeepingStructs, isJsonObject, isViolation, maxBracketDepth } from "./json-structs.js";

/** The unary methods decoded here: those whose request has a `Struct` field. */
export const UNARY_JSON_METHODS = [
  AnalyticsService.method.logUserActivity,
  AnalyticsService.method.logError,
  AnalyticsService.method.logDeviceStateChange,
  AnalyticsService.method.logJobOutcome,
] as const;

/** Bracket depth past which a request is refused before it is parsed (its `Struct`s nest in it). */
export const MAX_REQUEST_JSON_DEPTH = 64;

/** Decodes a body as Connect does (invalid UTF-8 becomes U+FFFD; JSON.parse then judges). */
const utf8 = new TextDecoder();

/** What Connect says of a body it cannot decode (`InvalidArgument`), bounded and well-formed. */
const cannotDecode = (schema: DescMessage, why: string) =>
  new ConnectError(wellFormedText(`cannot decode message ${schema.typeName} from JSON: ${why}`, 400), Code.InvalidArgument);

/** The decoder of `schema`'s JSON requests: the request, or a `ConnectError` (`InvalidArgument`). */
export function unaryJsonDecoder(schema: DescMessage): JsonRequestDecoder {
  return (body) => {
    const text = utf8.decode(body);
    if (maxBracketDepth(text) > MAX_REQUEST_JSON_DEPTH) throw cannotDecode(schema, `nested deeper than ${MAX_REQUEST_JSON_DEPTH} levels`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw cannotDecode(schema, (err as Error).message);
    }
    if (!isJsonObject(json)) throw cannotDecode(schema, "expected a JSON object");
    let request;
    try {
      request = fromJsonKeepingStructs(schema, json);
    } catch (err) {
      // protobuf-es's own words already name the message.
      throw new ConnectError(wellFormedText((err as Error).message, 400), Code.InvalidArgument);
    }
    if (isViolation(request)) throw invalidArgument([request]);
    return request;
  };
}
