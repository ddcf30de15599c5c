/**
 * Pure helpers that turn what a call looked like into request-log columns.
 */
import { Code } from "@connectrpc/connect";

/** The RPC protocol of a request, from its content type. */
export function protocolOf(contentType: string | null): "grpc" | "grpc-web" | "connect" {
  const ct = (contentType ?? "").toLowerCase();
  if (ct.startsWith("application/grpc-web")) return "grpc-web";
  if (ct.startsWith("application/grpc")) return "grpc";
  return "connect";
}

const HTTP_STATUS: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** The HTTP status a REST client would expect for an RPC code (0 = OK → 200), as Connect maps them. */
export function httpStatusOf(code: Code | 0): number {
  return code === 0 ? 200 : (HTTP_STATUS[code] ?? 500);
}

/**
 * The client address: the socket peer, or — only when `trustedProxyHops` > 0 — the address that
 * many hops back in `X-Forwarded-For` (each trusted proxy appends the peer it saw, so the entries
 * left of that point are client-controlled and never trusted).
 */
export function clientIpOf(remoteAddress: string | undefined, forwardedFor: string | undefined, trustedProxyHops: number): string | undefined {
  const peer = remoteAddress?.startsWith("::ffff:") ? remoteAddress.slice(7) : remoteAddress;
  if (trustedProxyHops <= 0 || !forwardedFor) return peer;
  const hops = forwardedFor
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  return hops[hops.length - trustedProxyHops] ?? hops[0] ?? peer;
}

/**
 * `text` as a request-log column can hold it: PostgreSQL's text refuses U+0000, which would cost
 * the whole row (a violation text that quotes a client's input, a token's subject), so it becomes
 * U+FFFD as in any other unreadable text; null stays null.
 */
export function storableText(text: string | null | undefined): string | null {
  if (text === null || text === undefined) return null;
  return text.includes("\u0000") ? text.replaceAll("\u0000", "\uFFFD") : text;
}

/**
 * `fn` remembering its answer per address: a client keeps its address across its calls, and
 * anonymising one (parsing, regular expressions) costs more than looking it up. Holds at most
 * `max` addresses, then starts over, so a scan from many addresses cannot grow it without bound.
 */
export function rememberPerAddress<T>(fn: (address: string) => T, max: number): (address: string) => T {
  const remembered = new Map<string, T>();
  return (address) => {
    if (remembered.has(address)) return remembered.get(address)!;
    const answer = fn(address);
    if (remembered.size >= max) remembered.clear();
    remembered.set(address, answer);
    return answer;
  };
}

/** True when `procedure` (e.g. `/pkg.Service/Method`) starts with one of `prefixes`. */
export function isSkipped(procedure: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => procedure.startsWith(p));
}

/** Procedures not logged by default: probes, reflection and the admin queries themselves. */
export const DEFAULT_REQUEST_LOG_SKIP = [
  "/grpc.health.v1.Health/",
  "/grpc.reflection.v1.ServerReflection/",
  "/grpc.reflection.v1alpha.ServerReflection/",
  "/analytics.v1.MetricsService/",
] as const;
