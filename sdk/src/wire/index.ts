/**
 * `@fleet/analytics-sdk/wire`: what the SDK's compiled protobuf codec shares with the analytics
 * server's binary `LogEvents` fast path, so both read and write the same bytes from one
 * definition: the wire-identical `analytics.internal` message types and the field rules of the
 * compiled codecs. Not a client API: applications use `.`, `./node`, `./web` or `./device`.
 *
 * @module
 */
export { unsupportedFieldKind, wireTypeOf } from "./codec-fields.js";
export {
  LogEventsRequestWireSchema,
  LogEventsResponseWireSchema,
  type LogEventsRequestWire,
  type LogEventsResponseWire,
} from "./log-events-wire.js";
