/**
 * Tokens for tests that call a real server (or routes with the auth interceptor). Tokens are
 * signed with the secret the server under test uses: `config.jwtSecret`, or the file it keeps in
 * `config.dataDir` (created here first if the server has not started yet, which is the same).
 *
 * ```ts
 * const token = await mintTestToken(server.config, "service");
 * createGrpcTransport({ baseUrl, interceptors: [bearer(token)] });
 * fetch(url, { headers: { ...(await authHeader(server.config, "admin")), "content-type": "application/json" } });
 * ```
 */
import type { Interceptor } from "@connectrpc/connect";
import type { Config } from "../../src/config.js";
import { mintToken } from "../../src/auth/mint-token.js";
import type { Role } from "../../src/auth/principal.js";
import { loadSigningSecret } from "../../src/auth/signing-secret.js";

/** Options for {@link mintTestToken}. */
export interface TestTokenOptions {
  /** Lifetime (default one hour). */
  readonly ttlSeconds?: number;
  /** Issue time, ms (default now); with a short ttl, makes expired tokens. */
  readonly nowMs?: number;
}

/**
 * A valid token for `role` with subject `sub` (default `test-<role>`), carrying the issuer and
 * audience the config requires.
 */
export async function mintTestToken(
  config: Pick<Config, "jwtSecret" | "dataDir" | "jwtIssuer" | "jwtAudience">,
  role: Role = "service",
  sub: string = `test-${role}`,
  options: TestTokenOptions = {},
): Promise<string> {
  const secret = await loadSigningSecret(config);
  return mintToken(
    secret.key,
    { role, sub, ttlSeconds: options.ttlSeconds ?? 3600, issuer: config.jwtIssuer, audience: config.jwtAudience },
    options.nowMs,
  );
}

/** `{ authorization: "Bearer <token>" }` for fetch and buf curl callers. */
export async function authHeader(
  config: Pick<Config, "jwtSecret" | "dataDir" | "jwtIssuer" | "jwtAudience">,
  role: Role = "service",
  sub?: string,
): Promise<{ authorization: string }> {
  return { authorization: `Bearer ${await mintTestToken(config, role, sub)}` };
}

/** A client interceptor sending `token` as a bearer token on every call. */
export function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}
