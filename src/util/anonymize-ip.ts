/**
 * Client IP anonymisation for anything the service stores (the request log). Pure, so the
 * request-log interceptor and its tests agree on exactly what is kept.
 */
import { isIPv4, isIPv6 } from "node:net";

/** How stored client IPs are anonymised (`ANALYTICS_IP_ANONYMIZATION`). */
export const IP_ANONYMIZATION_MODES = ["none", "truncate", "drop"] as const;
/** One of {@link IP_ANONYMIZATION_MODES}. */
export type IpAnonymization = (typeof IP_ANONYMIZATION_MODES)[number];

/**
 * The default: keeps the network (enough for abuse analysis and rough geography) but not the
 * host, which is what privacy regulators usually ask for.
 */
export const DEFAULT_IP_ANONYMIZATION: IpAnonymization = "truncate";

/**
 * Anonymises one client address.
 *
 * - `none`: the address as given (IPv4-mapped IPv6 such as `::ffff:10.1.2.3` becomes `10.1.2.3`).
 * - `truncate`: IPv4 keeps its /24 (`203.0.113.77` → `203.0.113.0`), IPv6 its /48
 *   (`2001:db8:1234:5678::1` → `2001:db8:1234::`).
 * - `drop`: nothing is kept.
 *
 * @returns the text to store, or `null` when nothing may be stored (drop, or not an IP address:
 *   an unparseable value is never stored verbatim, since it could be anything).
 */
export function anonymizeIp(ip: string | null | undefined, mode: IpAnonymization): string | null {
  if (ip === null || ip === undefined || mode === "drop") return null;
  let address = ip.trim();
  // A zone index (fe80::1%eth0) says nothing about the client; drop it.
  const zone = address.indexOf("%");
  if (zone >= 0) address = address.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) address = mapped[1]!;
  if (isIPv4(address)) {
    if (mode === "none") return address;
    const octets = address.split(".");
    return `${octets[0]}.${octets[1]}.${octets[2]}.0`;
  }
  if (isIPv6(address)) {
    const groups = expandIpv6(address);
    if (mode === "none") return compressIpv6(groups);
    return compressIpv6([...groups.slice(0, 3), 0, 0, 0, 0, 0]);
  }
  return null;
}

/** Eight 16-bit groups of a valid IPv6 address (an embedded IPv4 tail becomes two groups). */
function expandIpv6(address: string): number[] {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::") as [string, string | undefined];
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const left = parse(head);
  if (tail === undefined) return left;
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** RFC 5952 text: lower case, the longest run (≥ 2) of zero groups as `::`. */
function compressIpv6(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLength < 2) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}
