/**
 * Per-role rate limits: the defaults and the `ANALYTICS_RATE_LIMITS` syntax. Pure; the config
 * module parses with it, the rate-limit interceptor applies it.
 */
import { ROLES, type Role } from "./principal.js";

/** A token bucket: `perSecond` calls refill continuously, up to `burst` at once. */
export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
}

/** The limit of each role; `undefined` means unlimited. */
export type RateLimits = Readonly<Record<Role, RateLimit | undefined>>;

/**
 * Defaults sized for the callers this service has (docs/ARCHITECTURE.md): backend services send a lot (and should batch),
 * browsers and devices batch through `LogEvents` and the metrics stream, admins run queries.
 */
export const DEFAULT_RATE_LIMITS: RateLimits = {
  admin: { perSecond: 20, burst: 50 },
  service: { perSecond: 1000, burst: 2000 },
  user: { perSecond: 10, burst: 50 },
  device: { perSecond: 10, burst: 50 },
};

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600 };

/**
 * Parses `role=RATE/UNIT[:BURST]` entries separated by commas, e.g.
 * `user=5/s:20,device=600/m,admin=off`; roles not named keep their default. `off` alone turns
 * every limit off. The burst defaults to twice the per-second rate (at least 1).
 *
 * @throws Error with a message fit for a configuration error.
 */
export function parseRateLimits(raw: string): RateLimits {
  const text = raw.trim().toLowerCase();
  if (text === "off" || text === "none") return { admin: undefined, service: undefined, user: undefined, device: undefined };
  const out: Record<Role, RateLimit | undefined> = { ...DEFAULT_RATE_LIMITS };
  for (const entry of text.split(",").map((e) => e.trim()).filter((e) => e !== "")) {
    const m = /^([a-z]+)\s*=\s*(?:(off)|(\d+(?:\.\d+)?)\s*\/\s*([smh])(?:\s*:\s*(\d+))?)$/.exec(entry);
    if (!m) throw new Error(`has a bad entry "${entry}": expected role=RATE/s|m|h[:BURST] or role=off, e.g. user=5/s:20`);
    const role = m[1] as Role;
    if (!(ROLES as readonly string[]).includes(role)) throw new Error(`names unknown role "${m[1]}" (roles: ${ROLES.join(", ")})`);
    if (m[2] === "off") {
      out[role] = undefined;
      continue;
    }
    const perSecond = Number(m[3]) / UNIT_SECONDS[m[4]!]!;
    if (!(perSecond > 0)) throw new Error(`gives ${role} a rate of 0: use ${role}=off for no limit`);
    const burst = m[5] !== undefined ? Number(m[5]) : Math.max(1, Math.ceil(perSecond * 2));
    if (burst < 1) throw new Error(`gives ${role} a burst below 1`);
    out[role] = { perSecond, burst };
  }
  return out;
}
