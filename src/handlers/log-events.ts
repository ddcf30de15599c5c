/**
 * `LogEvents`: a batch of events of any kind, each judged alone (one bad item never costs the
 * valid ones beside it), stored through the batch writer and answered only once committed.
 *
 * Three entry points share {@link LogEventsDeps} and one batch routine: `logEvents` takes the
 * generated request (in-process transports, and every encoding with the fast path off),
 * `logEventsWire` the binary fast path (`src/wire/log-events-wire.ts`), whose events arrive as
 * bytes, and `logEventsJson` Connect JSON (`src/wire/log-events-json.ts`), whose body arrives as
 * text. Those two decode events here one by one, between turns of the event loop, so an
 * undecodable event is rejected as an item too and no batch holds the process for long.
 */
import type { HandlerContext } from "@connectrpc/connect";
import {
  EventSchema,
  type Event,
  type EventResult,
  type LogEventsRequest,
  type LogEventsResponse,
} from "../../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { WriteOutcome } from "../../sdk/src/gen/analytics/v1/common_pb.js";
import { authorizeEvent, EVENT_KIND_FIELDS } from "../auth/access-policy.js";
import { kPrincipal, type Principal } from "../auth/principal.js";
import type { EventRow } from "../ingest/event-rows.js";
import { eventToRow, MAX_EVENTS_PER_BATCH } from "../ingest/log-events.js";
import type { BatchWriter, RowResult } from "../storage/batch-writer.js";
import { storageErrorToConnect } from "../storage/storage-errors.js";
import type { Logger } from "../util/logger.js";
import { invalidArgument, type Violation } from "../validation/field-rules.js";
import { encodeLogEventsResponse, logEventsResponseWire, type LogEventsRequestWire, type LogEventsResponseWire } from "../wire/log-events-wire.js";
import { compileDecoder, WireFormatError } from "../wire/message-decoder.js";
import { eventFromJson, EventsJsonError, invalidJsonBody, splitEventsJson } from "../wire/log-events-json.js";
import type { JsonBodyCapture } from "../wire/json-body-capture.js";
import { setImmediate as nextTurn } from "node:timers/promises";

/** What `LogEvents` needs. */
export interface LogEventsDeps {
  readonly writer: Pick<BatchWriter, "write" | "hasRoom" | "bufferFullError">;
  readonly log: Logger;
  /** The server clock (ms). */
  readonly now: () => number;
  /** For `logEventsJson`: how its body reaches it, and the longest JSON text of a valid event. */
  readonly json?: { readonly capture: JsonBodyCapture; readonly maxEventChars: number };
}

/** A batch item: an event, or why its bytes are not one. */
type Item = Event | Violation;

/** Maps a writer result to the proto outcome. */
export function writeOutcome(result: RowResult): WriteOutcome {
  switch (result.outcome) {
    case "replayed":
      return WriteOutcome.REPLAYED;
    case "deduplicated":
      return WriteOutcome.DEDUPLICATED;
    default:
      return WriteOutcome.STORED;
  }
}

const NO_VIOLATIONS = Object.freeze([]) as unknown as EventResult["violations"];

/**
 * A result as a plain message object (`create` is not needed for a proto3 message, and costs);
 * results without violations share one empty list (results are answered, never changed).
 */
function result(outcome: WriteOutcome, id: string, violations?: readonly Violation[]): EventResult {
  return {
    $typeName: "analytics.v1.EventResult",
    outcome,
    id,
    violations:
      violations === undefined
        ? NO_VIOLATIONS
        : violations.map((v) => ({ $typeName: "analytics.v1.FieldViolation", field: v.field, description: v.description })),
  };
}

/**
 * The longest a batch is decoded or judged without letting other calls run. A batch's cost is
 * linear but can be large (hostile batches of many-key Structs or long backslash runs take tens of
 * ms to decode and judge), and all of it ran as one block, with health checks waiting behind one
 * such call (docs/BENCHMARKS.md#measured-choices-in-the-code).
 */
export const SLICE_MS = 15;

/** A pause to await between pieces of work: none while the slice is short, else a turn of the event loop. */
function slicer(): () => Promise<void> | undefined {
  let sliceStart = performance.now();
  return () => {
    if (performance.now() - sliceStart < SLICE_MS) return undefined;
    return nextTurn().then(() => {
      sliceStart = performance.now();
    });
  };
}

/** Refuses an empty or oversized batch, before any of its events is decoded or judged. */
function assertBatchSize(events: number): void {
  if (events === 0) throw invalidArgument([{ field: "events", description: "must hold at least one event" }]);
  if (events > MAX_EVENTS_PER_BATCH) {
    throw invalidArgument([{ field: "events", description: `must hold at most ${MAX_EVENTS_PER_BATCH} events (got ${events})` }]);
  }
}

/** Decodes a JSON body as Connect does (invalid UTF-8 becomes U+FFFD; JSON.parse then judges). */
const utf8 = new TextDecoder();

/** Creates the entry points of `LogEvents`. */
export function createLogEventsHandlers(deps: LogEventsDeps) {
  // Payloads are only measured and stored: decoded straight to their JSON text.
  const decodeEvent = compileDecoder(EventSchema, { structs: "json-text" });

  /** Judges, stores and answers a batch; results in request order. */
  async function storeBatch(items: readonly Item[], who: Principal | undefined): Promise<{ results: EventResult[]; stored: number; rejected: number }> {
    const nowMs = deps.now();
    const results: EventResult[] = new Array(items.length);
    let rejected = 0;
    const byTable = new Map<EventRow["table"], { index: number; columns: EventRow["columns"] }[]>();
    const pause = slicer();
    for (let index = 0; index < items.length; index++) {
      const wait = pause();
      if (wait) await wait;
      const item = items[index]!;
      if (!("kind" in item)) {
        results[index] = result(WriteOutcome.REJECTED, "", [item]);
        rejected++;
        continue;
      }
      // The auth interceptor judged the call; a batch mixes kinds, so each item is judged by
      // the matrix row of its own unary RPC, on the request as sent (before defaults apply).
      const denial = authorizeEvent(who, item.kind.case, item.kind.value);
      if (denial !== undefined) {
        const kind = EVENT_KIND_FIELDS[item.kind.case!];
        const field = denial.field === kind ? `events[${index}].${kind}` : `events[${index}].${kind}.${denial.field}`;
        results[index] = result(WriteOutcome.REJECTED, "", [{ field, description: `permission denied: ${denial.reason}` }]);
        rejected++;
        continue;
      }
      const prepared = eventToRow(item, who, nowMs, index);
      if ("violations" in prepared) {
        results[index] = result(WriteOutcome.REJECTED, "", prepared.violations);
        rejected++;
        continue;
      }
      let group = byTable.get(prepared.row.table);
      if (group === undefined) byTable.set(prepared.row.table, (group = []));
      group.push({ index, columns: prepared.row.columns });
    }
    const accepted = items.length - rejected;
    // All or nothing on capacity: never store part of a batch and then refuse the rest (the
    // refused batch stored nothing, so retrying it whole is safe).
    if (accepted > 0 && !deps.writer.hasRoom(accepted)) throw deps.writer.bufferFullError();
    try {
      await Promise.all(
        [...byTable].map(async ([table, group]) => {
          const stored = await deps.writer.write(
            table,
            group.map((g) => g.columns),
          );
          stored.forEach((r, i) => {
            results[group[i]!.index] = result(writeOutcome(r), r.id ?? "");
          });
        }),
      );
    } catch (err) {
      throw storageErrorToConnect(err, deps.log, "LogEvents");
    }
    return { results, stored: accepted, rejected };
  }

  return {
    /** The generated-types entry point (Connect JSON, in-process transports). */
    async logEvents(req: LogEventsRequest, ctx: HandlerContext): Promise<LogEventsResponse> {
      assertBatchSize(req.events.length);
      const { results, stored, rejected } = await storeBatch(req.events, ctx.values.get(kPrincipal));
      return { $typeName: "analytics.v1.LogEventsResponse", results, storedCount: stored, rejectedCount: rejected };
    },

    /** The binary fast path: events decoded one by one here, results encoded by hand. */
    async logEventsWire(req: LogEventsRequestWire, ctx: HandlerContext): Promise<LogEventsResponseWire> {
      assertBatchSize(req.events.length);
      const items: Item[] = new Array(req.events.length);
      const pause = slicer();
      for (let index = 0; index < req.events.length; index++) {
        const wait = pause();
        if (wait) await wait;
        try {
          items[index] = decodeEvent(req.events[index]!);
        } catch (err) {
          if (!(err instanceof WireFormatError)) throw err;
          items[index] = { field: `events[${index}]`, description: `is not a valid analytics.v1.Event encoding: ${err.message}` };
        }
      }
      const { results, stored, rejected } = await storeBatch(items, ctx.values.get(kPrincipal));
      return logEventsResponseWire(encodeLogEventsResponse(results, stored, rejected));
    },

    /** Connect JSON: the body split into events, each parsed alone. */
    async logEventsJson(_key: unknown, ctx: HandlerContext): Promise<LogEventsResponse> {
      const json = deps.json;
      if (json === undefined) throw new Error("logEventsJson needs deps.json");
      const text = utf8.decode(json.capture.bodyOf(ctx));
      try {
        const { spans, count } = splitEventsJson(text, MAX_EVENTS_PER_BATCH);
        assertBatchSize(count);
        const items: Item[] = new Array(spans.length);
        const pause = slicer();
        for (let index = 0; index < spans.length; index++) {
          const wait = pause();
          if (wait) await wait;
          items[index] = eventFromJson(text, spans[index]!, index, json.maxEventChars);
        }
        const { results, stored, rejected } = await storeBatch(items, ctx.values.get(kPrincipal));
        return { $typeName: "analytics.v1.LogEventsResponse", results, storedCount: stored, rejectedCount: rejected };
      } catch (err) {
        throw err instanceof EventsJsonError ? invalidJsonBody(err) : err;
      }
    },
  };
}
