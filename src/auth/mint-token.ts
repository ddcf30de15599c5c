/**
 * Token minting for the CLI (`token --role device --sub device-123 --ttl 30d`), the first-start
 * banner and tests: HS256 JWTs with the claims the verifier requires.
 */
import { SignJWT } from "jose";
import { ROLES, type Role } from "./principal.js";

/** What a minted token says. */
export interface TokenClaims {
  readonly role: Role;
  readonly sub: string;
  /** Lifetime in seconds. */
  readonly ttlSeconds: number;
  /** `iss`, when the server checks it (`ANALYTICS_JWT_ISSUER`). */
  readonly issuer?: string | undefined;
  /** `aud`, when the server checks it (`ANALYTICS_JWT_AUDIENCE`). */
  readonly audience?: string | undefined;
}

/** Signs a token with the HS256 secret. `nowMs` is injectable for tests. */
export async function mintToken(key: Uint8Array, claims: TokenClaims, nowMs: number = Date.now()): Promise<string> {
  if (!(ROLES as readonly string[]).includes(claims.role)) throw new Error(`role must be one of ${ROLES.join(", ")}`);
  if (claims.sub.trim() === "") throw new Error("sub must not be empty");
  const iat = Math.floor(nowMs / 1000);
  let jwt = new SignJWT({ role: claims.role })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + Math.max(1, Math.floor(claims.ttlSeconds)));
  if (claims.issuer !== undefined) jwt = jwt.setIssuer(claims.issuer);
  if (claims.audience !== undefined) jwt = jwt.setAudience(claims.audience);
  return jwt.sign(key);
}

const TTL_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/**
 * Parses a lifetime like `90s`, `15m`, `12h`, `30d`, `2w` (a bare number is seconds).
 *
 * @throws Error naming the expected form.
 */
export function parseTtl(text: string): number {
  const m = /^\s*(\d+)\s*([smhdw]?)\s*$/i.exec(text);
  const seconds = m ? Number(m[1]) * TTL_UNITS[(m[2] || "s").toLowerCase()]! : NaN;
  if (!(seconds > 0)) throw new Error(`bad ttl ${JSON.stringify(text)}: use a number with s, m, h, d or w, e.g. 30d`);
  return seconds;
}
