/**
 * JWT verification with `jose`: HS256 with the service secret, and RS/PS/ES/EdDSA with keys from
 * a JWKS (URL or file) when one is configured. Every way a token can be bad becomes
 * `Unauthenticated` with a message saying which way, in terms that tell a caller nothing about the
 * configuration (the configured issuer, audience and algorithms go to the debug log only); a key
 * source that cannot be reached is `Unavailable` (the token may be fine).
 */
import { readFile } from "node:fs/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type JWTPayload,
} from "jose";
import { errorFields, type Logger } from "../util/logger.js";
import { ROLES, type Principal, type Role } from "./principal.js";
import { hs256Accepted, loadSigningSecret, type SigningSecretSettings } from "./signing-secret.js";

/** Turns a token into the principal it names, or throws a `ConnectError`. */
export type TokenVerifier = (token: string) => Promise<Principal>;

/** Resolves the public key for an asymmetrically signed token (a jose JWKS function). */
export type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

/** Options for {@link createTokenVerifier}. */
export interface TokenVerifierOptions {
  /** HS256 key bytes; without them HS256 tokens are refused (a JWKS alone signs). */
  readonly secret?: Uint8Array | undefined;
  /** Keys for asymmetric algorithms; without it only HS256 tokens are accepted. */
  readonly jwks?: KeyResolver | undefined;
  /** Required `iss`, when set. */
  readonly issuer?: string | undefined;
  /** Required `aud` (one of the token's audiences), when set. */
  readonly audience?: string | undefined;
  /** Revocation cut-off (epoch ms): tokens issued before it, or without `iat`, are refused. */
  readonly notBeforeMs?: number | undefined;
  /** Allowed clock skew for `exp` / `nbf`, in seconds (default 5). */
  readonly clockToleranceSec?: number;
  /** The clock, for tests (ms). */
  readonly now?: () => number;
  readonly log?: Logger;
}

/** Algorithms accepted from a JWKS. HS256 is accepted only with the service secret. */
export const ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"];

/** Longest accepted subject, the same as any stored id. */
const MAX_SUBJECT_LENGTH = 128;

class KeySourceUnavailable extends Error {
  override name = "KeySourceUnavailable";
}

const unauthenticated = (reason: string, cause?: unknown) =>
  new ConnectError(`invalid token: ${reason}`, Code.Unauthenticated, undefined, undefined, cause);

/** A claim as the debug log shows it. */
const claimText = (value: unknown) => (value === undefined ? "(none)" : JSON.stringify(value));

const iso = (seconds: unknown) => (typeof seconds === "number" ? new Date(seconds * 1000).toISOString() : "an unknown time");

/**
 * Maps a jose failure to the client-facing error. What the configuration requires (issuer,
 * audience) is told only to the debug log: a caller without a valid token learns nothing from it.
 */
function explain(err: unknown, options: TokenVerifierOptions): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof KeySourceUnavailable) {
    return new ConnectError("cannot check the token right now: its signing keys are unavailable; retry later", Code.Unavailable, undefined, undefined, err);
  }
  if (err instanceof errors.JWTExpired) return unauthenticated(`expired at ${iso(err.payload.exp)}`, err);
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case "nbf":
        return unauthenticated(`not valid before ${iso(err.payload.nbf)}`, err);
      case "iat":
        return unauthenticated("issued in the future", err);
      case "iss":
        options.log?.debug("token refused", { reason: `issuer ${claimText(err.payload.iss)} is not ${JSON.stringify(options.issuer)}` });
        return unauthenticated("issuer not accepted", err);
      case "aud":
        options.log?.debug("token refused", { reason: `audience ${claimText(err.payload.aud)} does not include ${JSON.stringify(options.audience)}` });
        return unauthenticated("audience not accepted", err);
      default:
        return unauthenticated(err.reason === "missing" ? `claim "${err.claim}" is required` : `claim "${err.claim}" is invalid`, err);
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return unauthenticated("signature verification failed", err);
  if (err instanceof errors.JOSEAlgNotAllowed) return unauthenticated("its signing algorithm is not accepted", err);
  if (err instanceof errors.JWKSNoMatchingKey) return unauthenticated("no configured key matches it (kid/alg)", err);
  if (err instanceof errors.JWKSMultipleMatchingKeys) return unauthenticated("several configured keys match it; give it a kid", err);
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid || err instanceof errors.JOSENotSupported) {
    return unauthenticated("malformed JWT", err);
  }
  options.log?.warn("token verification failed unexpectedly", errorFields(err));
  return unauthenticated("could not be verified", err);
}

/**
 * Refuses a token issued before the revocation cut-off, or one that does not say when it was
 * issued. It reads the payload before the signature is checked: refusing an unverified token is
 * safe, the bytes read are the ones `jwtVerify` then authenticates, and a revoked token costs no
 * signature check.
 */
function refuseIfRevoked(token: string, notBeforeMs: number, log: Logger | undefined): void {
  let iat: unknown;
  try {
    iat = decodeJwt(token).iat;
  } catch (err) {
    throw unauthenticated("malformed JWT", err);
  }
  if (typeof iat !== "number" || !Number.isFinite(iat)) throw unauthenticated('claim "iat" is required');
  if (iat * 1000 < notBeforeMs) {
    log?.debug("token refused", { reason: `issued at ${iso(iat)}, before ANALYTICS_TOKENS_NOT_BEFORE ${new Date(notBeforeMs).toISOString()}` });
    throw unauthenticated("revoked (issued before the cut-off); get a new token");
  }
}

/** Checks the claims jose does not know about; returns the principal. */
function principalOf(payload: JWTPayload): Principal {
  const { sub, role } = payload;
  if (typeof sub !== "string" || sub.trim() === "") throw unauthenticated('claim "sub" is required');
  if (sub.length > MAX_SUBJECT_LENGTH) throw unauthenticated(`claim "sub" is longer than ${MAX_SUBJECT_LENGTH} characters`);
  if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
    throw unauthenticated(`claim "role" must be one of ${ROLES.join(", ")}`);
  }
  return { subject: sub, role: role as Role, expiresAtMs: typeof payload.exp === "number" ? payload.exp * 1000 : undefined };
}

/** Creates a verifier. */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const algorithms = [...(options.secret ? ["HS256"] : []), ...(options.jwks ? ASYMMETRIC_ALGORITHMS : [])];
  if (algorithms.length === 0) throw new Error("a token verifier needs an HS256 secret, a JWKS or both");
  const { secret, jwks } = options;
  const getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey | Uint8Array> => {
    if (header.alg === "HS256") {
      if (secret) return secret;
      throw new errors.JOSEAlgNotAllowed("no HS256 secret configured");
    }
    if (!jwks) throw new errors.JOSEAlgNotAllowed("no JWKS configured");
    try {
      return await jwks(header, token);
    } catch (err) {
      // Network failures, timeouts and a broken remote document mean "cannot tell now", not
      // "bad token"; everything else jose says about the keys is about this token.
      const unreachable =
        !(err instanceof errors.JOSEError) || err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || err.code === "ERR_JOSE_GENERIC";
      if (!unreachable) throw err;
      options.log?.warn("JWKS unavailable", errorFields(err));
      throw new KeySourceUnavailable("JWKS unavailable", { cause: err });
    }
  };
  return async (token) => {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch (err) {
      throw unauthenticated("malformed JWT", err);
    }
    if (typeof header.alg !== "string" || header.alg.toLowerCase() === "none") {
      throw unauthenticated("unsigned tokens (alg none) are not accepted");
    }
    if (!algorithms.includes(header.alg)) {
      options.log?.debug("token refused", { reason: `algorithm ${header.alg} is not accepted (accepted: ${algorithms.join(", ")})` });
      throw unauthenticated("its signing algorithm is not accepted");
    }
    if (options.notBeforeMs !== undefined) refuseIfRevoked(token, options.notBeforeMs, options.log);
    try {
      const { payload } = await jwtVerify(token, getKey, {
        algorithms,
        requiredClaims: options.notBeforeMs !== undefined ? ["exp", "sub", "iat"] : ["exp", "sub"],
        clockTolerance: options.clockToleranceSec ?? 5,
        ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
        ...(options.audience !== undefined ? { audience: options.audience } : {}),
        ...(options.now ? { currentDate: new Date(options.now()) } : {}),
      });
      return principalOf(payload);
    } catch (err) {
      throw explain(err, options);
    }
  };
}

/** Options for {@link cachedTokenVerifier}. */
export interface TokenCacheOptions {
  /** Most tokens remembered (least recently used first out). Default 10 000. */
  readonly maxEntries?: number;
  /** Longest a verified token is trusted without verifying it again. Default 60 s. */
  readonly maxAgeMs?: number;
  /** Clock (ms); injectable for tests. */
  readonly now?: () => number;
}

/**
 * Remembers verified tokens, so a client that sends the same token on every call pays the
 * signature check (WebCrypto, the largest share of the auth interceptor's cost) once a minute
 * instead of per call. A token is trusted from the cache only until its own `exp` and at most
 * `maxAgeMs`; failures are never cached. Keyed by the whole token, which is immutable.
 */
export function cachedTokenVerifier(verify: TokenVerifier, options: TokenCacheOptions = {}): TokenVerifier {
  const maxEntries = options.maxEntries ?? 10_000;
  const maxAgeMs = options.maxAgeMs ?? 60_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { principal: Principal; validUntil: number }>();
  return async (token) => {
    const t = now();
    const hit = cache.get(token);
    if (hit !== undefined) {
      cache.delete(token);
      if (hit.validUntil > t) {
        cache.set(token, hit);
        return hit.principal;
      }
    }
    const principal = await verify(token);
    const exp = decodeJwt(token).exp;
    const validUntil = Math.min(t + maxAgeMs, typeof exp === "number" ? exp * 1000 : t);
    if (validUntil > t) {
      cache.set(token, { principal, validUntil });
      if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
    }
    return principal;
  };
}

/** Reads a JWKS file (`{"keys": [...]}`) into a key resolver; errors name the file. */
export async function readJwksFile(path: string): Promise<KeyResolver> {
  let jwks: JSONWebKeySet;
  try {
    jwks = JSON.parse(await readFile(path, "utf8")) as JSONWebKeySet;
  } catch (err) {
    throw new Error(`ANALYTICS_JWKS_FILE: cannot read ${path} as JSON: ${(err as Error).message}`);
  }
  if (!jwks || !Array.isArray(jwks.keys)) throw new Error(`ANALYTICS_JWKS_FILE: ${path} must hold {"keys": [...]}`);
  try {
    return createLocalJWKSet(jwks);
  } catch (err) {
    throw new Error(`ANALYTICS_JWKS_FILE: ${path} is not a valid JWKS: ${(err as Error).message}`);
  }
}

/** The settings of the server's verifier (fields of the server's `Config`). */
export interface TokenVerifierSettings extends SigningSecretSettings {
  readonly jwtIssuer: string | undefined;
  readonly jwtAudience: string | undefined;
  readonly tokensNotBeforeMs: number | undefined;
}

/**
 * The verifier the server uses: the JWKS file or URL when configured, and the HS256 signing
 * secret when {@link hs256Accepted} (from the environment, or the data folder's, created if
 * missing).
 */
export async function createTokenVerifierFromConfig(
  config: TokenVerifierSettings,
  log?: Logger,
): Promise<TokenVerifier> {
  const secret = hs256Accepted(config) ? await loadSigningSecret(config) : undefined;
  if (secret?.warning) log?.warn(secret.warning);
  if (config.jwksFile !== undefined && config.jwksUrl !== undefined) {
    throw new Error("set only one of ANALYTICS_JWKS_URL and ANALYTICS_JWKS_FILE");
  }
  let jwks: KeyResolver | undefined;
  if (config.jwksFile !== undefined) jwks = await readJwksFile(config.jwksFile);
  else if (config.jwksUrl !== undefined) jwks = createRemoteJWKSet(new URL(config.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 });
  return cachedTokenVerifier(
    createTokenVerifier({
      secret: secret?.key,
      jwks,
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      notBeforeMs: config.tokensNotBeforeMs,
      ...(log ? { log } : {}),
    }),
  );
}
