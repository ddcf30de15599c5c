/**
 * The service's own per-event work on the `LogEvents` fast path, in one process, without Connect,
 * HTTP/2 or PostgreSQL: the `log-events` benchmark's events (bench/_events.ts) decoded by the
 * compiled decoder, judged and turned into rows (`eventToRow`), laid out as the writer lays out a
 * `device_state_history` row, and encoded as binary COPY data in flushes of 1,000 rows. Once with
 * payloads decoded to objects (`structs: "object"`, what `fromBinary` gives) and once straight to
 * JSON text (`"json-text"`, what `LogEvents` uses), in that order, each after a warm-up.
 *
 * Wall time here is as noisy as the box. For decisions, count instructions instead, which a
 * neighbour's load does not change: run one mode and stage under callgrind at two event counts and
 * take the difference (it cancels start-up and compilation), e.g.
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null node --no-concurrent-recompilation \
 *     --import tsx bench/run.ts ingest-path --only json-text --stage copy --events 50000
 * and again with `--events 150000`: (second total - first total) / 100,000 = instructions per
 * event (docs/BENCHMARKS.md, ingest-path). `--no-concurrent-recompilation` makes V8 optimise on
 * the main thread, at the same moment in every run.
 *
 * Run: `npm run bench -- ingest-path [--events 400000] [--only object|json-text] [--stage decode|row|copy]`.
 * Last line: `{"us_per_event": {"object", "json_text"}, "json_text_over_object"}` (a mode not run: null).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { EventSchema } from "../sdk/src/gen/analytics/v1/analytics_service_pb.js";
import { eventToRow } from "../src/ingest/log-events.js";
import { binaryCopyWriters, copyBinary } from "../src/wire/copy-binary.js";
import { JsonText } from "../src/util/json-text.js";
import { compileDecoder, type DecoderOptions } from "../src/wire/message-decoder.js";
import { benchEvent } from "./_events.js";
import { numberArg, printResult, stringArg } from "./_support.js";

const EVENTS = numberArg("events", 400_000);
const only = stringArg("only") as NonNullable<DecoderOptions["structs"]> | undefined;
const stage = (stringArg("stage") ?? "copy") as "decode" | "row" | "copy";
if (!["decode", "row", "copy"].includes(stage)) throw new Error("--stage is decode, row or copy");
if (only !== undefined && only !== "object" && only !== "json-text") throw new Error("--only is object or json-text");

// 500 events as one request holds them: views of one buffer.
const encoded = Array.from({ length: 500 }, (_, n) => toBinary(EventSchema, create(EventSchema, benchEvent(7, n) as never)));
const whole = Buffer.concat(encoded);
let offset = 0;
const items = encoded.map((e) => whole.subarray(offset, (offset += e.length)));

/** `device_state_history`'s columns in the writer's order, with their types (src/db/entities). */
const COLUMNS = [
  ["id", "uuid"],
  ["event_id", "uuid"],
  ["occurred_at", "timestamptz"],
  ["device_id", "text"],
  ["previous_state", "text"],
  ["new_state", "text"],
  ["changed_by", "text"],
  ["reason", "text"],
  ["extra_data", "jsonb"],
] as const;
const writers = binaryCopyWriters(COLUMNS.map(([, type]) => ({ type })))!;
const NOW_MS = Date.UTC(2026, 10, 29);

let sink = 0;

/** Runs `count` events through the path up to `stage`; returns µs per event. */
function run(structs: NonNullable<DecoderOptions["structs"]>, count: number, decode = compileDecoder(EventSchema, { structs })): number {
  let rows: unknown[][] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const event = decode(items[i % 500]!);
    if (stage === "decode") {
      sink += event.kind.case === undefined ? 0 : 1;
      continue;
    }
    const prepared = eventToRow(event, undefined, NOW_MS, i % 500);
    if (!("row" in prepared)) throw new Error(`a bench event was rejected: ${JSON.stringify(prepared.violations)}`);
    if (stage === "row") {
      sink++;
      continue;
    }
    const columns = prepared.row.columns as Record<string, unknown>;
    rows.push(COLUMNS.map(([name]) => {
      const v = columns[name];
      return v instanceof JsonText ? v.text : (v ?? null);
    }));
    if (rows.length === 1_000) {
      sink += copyBinary(writers, rows).length;
      rows = [];
    }
  }
  return Number(process.hrtime.bigint() - started) / 1_000 / count;
}

const usPerEvent: Record<string, number | null> = { object: null, json_text: null };
for (const structs of ["object", "json-text"] as const) {
  if (only !== undefined && only !== structs) continue;
  const decode = compileDecoder(EventSchema, { structs });
  run(structs, Math.min(EVENTS, 50_000), decode); // warm-up
  const us = run(structs, EVENTS, decode);
  usPerEvent[structs === "object" ? "object" : "json_text"] = Math.round(us * 1000) / 1000;
  console.log(`${structs}: ${us.toFixed(3)} µs/event (${stage}, ${EVENTS} events)`);
}
if (sink === 0) throw new Error("nothing ran");
printResult({
  us_per_event: usPerEvent,
  json_text_over_object: usPerEvent.object && usPerEvent.json_text ? Math.round((usPerEvent.json_text / usPerEvent.object) * 1000) / 1000 : null,
});
