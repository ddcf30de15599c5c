import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { configureTextEncoding, getTextEncoding } from "@bufbuild/protobuf/wire";
import { StreamDeviceMetricsRequestSchema } from "../sdk/src/gen/analytics/v1/analytics_service_pb.js";
const NAMES = ["cpu","mem","disk","net_in","net_out","temperature","error_rate","queue_depth","latency_p50","latency_p99"];
const samples = [];
for (let i = 0; i < 100; i++) { const metrics: Record<string, number> = {}; NAMES.forEach((n, m) => (metrics[n] = (m+1)*100*(1+Math.random()*0.01))); samples.push({ occurredAt: timestampFromMs(Date.now() + i*1000), metrics }); }
const msg = create(StreamDeviceMetricsRequestSchema, { sequence: 1n, deviceId: "d1", samples });
const bytes = toBinary(StreamDeviceMetricsRequestSchema, msg);
const base = getTextEncoding();
const cache = new Map<number, string[]>();
const fast = { ...base, decodeUtf8(b: Uint8Array, strict?: boolean) {
  const n = b.length;
  if (n <= 32) {
    let h = n, ascii = true;
    for (let i = 0; i < n; i++) { const c = b[i]!; if (c > 0x7f) { ascii = false; break; } h = (Math.imul(h, 31) + c) | 0; }
    if (ascii) {
      const bucket = cache.get(h);
      if (bucket) for (const s of bucket) { if (s.length === n) { let eq = true; for (let i = 0; i < n; i++) if (s.charCodeAt(i) !== b[i]) { eq = false; break; } if (eq) return s; } }
      const s = String.fromCharCode.apply(null, b as unknown as number[]);
      if (cache.size < 10000) { if (bucket) bucket.push(s); else cache.set(h, [s]); }
      return s;
    }
  }
  return base.decodeUtf8(b, strict);
} };
function time(label: string) {
  for (let i = 0; i < 500; i++) fromBinary(StreamDeviceMetricsRequestSchema, bytes);
  const t = performance.now(); for (let i = 0; i < 2000; i++) fromBinary(StreamDeviceMetricsRequestSchema, bytes);
  console.log(label, ((performance.now() - t) / 2000 * 1000).toFixed(0), "us per 100-sample message");
}
for (let r = 0; r < 3; r++) { configureTextEncoding(base); time("default"); configureTextEncoding(fast); time("ascii cache"); }
