import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { base64url, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cookieAllowed, readCookie, readCredentials } from "../../src/auth/credentials.js";
import { mintToken, parseTtl } from "../../src/auth/mint-token.js";
import { loadSigningSecret } from "../../src/auth/signing-secret.js";
import { createTokenVerifier, readJwksFile, type TokenVerifier } from "../../src/auth/token-verifier.js";

const secret = new TextEncoder().encode("0123456789abcdef0123456789abcdef-unit");
const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const verify = createTokenVerifier({ secret, now: () => NOW });

async function failure(verifier: TokenVerifier, token: string): Promise<ConnectError> {
  try {
    await verifier(token);
  } catch (err) {
    return err as ConnectError;
  }
  throw new Error("expected the token to be refused");
}

const sign = (claims: Record<string, unknown>, key: Uint8Array = secret) =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(key);

describe("token verification", () => {
  it("accepts a minted token and returns its principal", async () => {
    const token = await mintToken(secret, { role: "device", sub: "device-123", ttlSeconds: 60 }, NOW);
    await expect(verify(token)).resolves.toEqual({ role: "device", subject: "device-123", expiresAtMs: NOW + 60_000 });
  });

  it.each([
    ["expired", async () => mintToken(secret, { role: "user", sub: "u", ttlSeconds: 60 }, NOW - 3600_000), /^invalid token: expired at 2026-01-01T11:01:00.000Z$/],
    ["not yet valid", async () => sign({ sub: "u", role: "user", exp: NOW / 1000 + 7200, nbf: NOW / 1000 + 3600 }), /^invalid token: not valid before 2026-01-01T13:00:00.000Z$/],
    ["wrongly signed", async () => mintToken(new TextEncoder().encode("another-secret-another-secret-1234"), { role: "admin", sub: "x", ttlSeconds: 60 }, NOW), /^invalid token: signature verification failed$/],
    ["alg none", async () => `${base64url.encode('{"alg":"none","typ":"JWT"}')}.${base64url.encode(JSON.stringify({ sub: "x", role: "admin", exp: NOW / 1000 + 60 }))}.`, /^invalid token: unsigned tokens \(alg none\) are not accepted$/],
    ["malformed", async () => "not.a.jwt", /^invalid token: malformed JWT$/],
    ["garbage", async () => "garbage", /^invalid token: malformed JWT$/],
    ["without exp", async () => sign({ sub: "u", role: "user" }), /^invalid token: claim "exp" is required$/],
    ["without sub", async () => sign({ role: "user", exp: NOW / 1000 + 60 }), /^invalid token: claim "sub" is required$/],
    ["without role", async () => sign({ sub: "u", exp: NOW / 1000 + 60 }), /^invalid token: claim "role" must be one of admin, service, user, device$/],
    ["with an unknown role", async () => sign({ sub: "u", role: "root", exp: NOW / 1000 + 60 }), /claim "role" must be one of/],
    ["HS512", async () => new SignJWT({ sub: "u", role: "admin", exp: NOW / 1000 + 60 }).setProtectedHeader({ alg: "HS512" }).sign(secret), /^invalid token: algorithm HS512 is not accepted \(accepted: HS256\)$/],
  ])("refuses a token that is %s as Unauthenticated, saying why", async (_name, make, message) => {
    const err = await failure(verify, await make());
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toMatch(message);
  });

  it("checks issuer and audience when configured", async () => {
    const strict = createTokenVerifier({ secret, issuer: "https://auth.example.com", audience: "analytics", now: () => NOW });
    const good = await mintToken(secret, { role: "user", sub: "u", ttlSeconds: 60, issuer: "https://auth.example.com", audience: "analytics" }, NOW);
    await expect(strict(good)).resolves.toMatchObject({ role: "user", subject: "u" });
    const wrongAud = await mintToken(secret, { role: "user", sub: "u", ttlSeconds: 60, issuer: "https://auth.example.com", audience: "billing" }, NOW);
    expect((await failure(strict, wrongAud)).rawMessage).toBe('invalid token: audience must include "analytics"');
    const noIss = await mintToken(secret, { role: "user", sub: "u", ttlSeconds: 60, audience: "analytics" }, NOW);
    expect((await failure(strict, noIss)).rawMessage).toMatch(/^invalid token: (issuer must be "https:\/\/auth.example.com"|claim "iss" is required)$/);
  });

  it("accepts asymmetric tokens from a JWKS file, and refuses them without one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "jwks-"));
    try {
      const { publicKey, privateKey } = await generateKeyPair("ES256");
      const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };
      const path = join(dir, "jwks.json");
      await writeFile(path, JSON.stringify({ keys: [jwk] }));
      const withJwks = createTokenVerifier({ secret, jwks: await readJwksFile(path), now: () => NOW });
      const token = await new SignJWT({ role: "service", sub: "billing" })
        .setProtectedHeader({ alg: "ES256", kid: "k1" })
        .setExpirationTime(NOW / 1000 + 60)
        .sign(privateKey);
      await expect(withJwks(token)).resolves.toEqual({ role: "service", subject: "billing", expiresAtMs: NOW + 60_000 });
      // HS256 still works beside it.
      await expect(withJwks(await mintToken(secret, { role: "admin", sub: "a", ttlSeconds: 60 }, NOW))).resolves.toMatchObject({ role: "admin" });
      expect((await failure(verify, token)).rawMessage).toMatch(/^invalid token: algorithm ES256 is not accepted/);
      const unknownKid = await new SignJWT({ role: "service", sub: "b" }).setProtectedHeader({ alg: "ES256", kid: "other" }).setExpirationTime(NOW / 1000 + 60).sign(privateKey);
      expect((await failure(withJwks, unknownKid)).rawMessage).toBe("invalid token: no configured key matches it (kid/alg)");
      // An HS256 token signed with the JWKS public key's bytes (algorithm confusion) fails.
      const confused = await sign({ sub: "x", role: "admin", exp: NOW / 1000 + 60 }, new TextEncoder().encode(JSON.stringify(jwk)));
      expect((await failure(withJwks, confused)).rawMessage).toBe("invalid token: signature verification failed");
      await writeFile(path, "{nope");
      await expect(readJwksFile(path)).rejects.toThrow(/ANALYTICS_JWKS_FILE: cannot read .* as JSON/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("answers Unavailable when a remote key source cannot be reached", async () => {
    const unreachable = createTokenVerifier({
      secret,
      jwks: async () => {
        throw new TypeError("fetch failed");
      },
      now: () => NOW,
    });
    const { privateKey } = await generateKeyPair("ES256");
    const token = await new SignJWT({ role: "service", sub: "b" }).setProtectedHeader({ alg: "ES256" }).setExpirationTime(NOW / 1000 + 60).sign(privateKey);
    const err = await failure(unreachable, token);
    expect(err.code).toBe(Code.Unavailable);
  });
});

describe("credentials", () => {
  const url = "http://api.example.com:8080/analytics.v1.AnalyticsService/LogError";
  const h = (init: Record<string, string>) => new Headers(init);
  const origins = ["https://app.example.com"];

  it("reads a bearer token, case-insensitively", () => {
    expect(readCredentials(h({ authorization: "Bearer abc.def.ghi" }), url, [])).toEqual({ token: "abc.def.ghi", source: "bearer" });
    expect(readCredentials(h({ authorization: "bearer  abc" }), url, [])).toEqual({ token: "abc", source: "bearer" });
  });

  it("refuses other authorization schemes rather than falling back to the cookie", () => {
    expect(readCredentials(h({ authorization: "Basic dTpw", cookie: "access_token=t" }), url, [])).toEqual({
      problem: 'the authorization header must be "Bearer <token>"',
    });
  });

  it("says what is missing", () => {
    expect(readCredentials(h({}), url, [])).toEqual({ problem: 'missing credentials: send "authorization: Bearer <token>" or an access_token cookie' });
  });

  it("reads the access_token cookie among others", () => {
    expect(readCookie("a=1; access_token=tok; b=2", "access_token")).toBe("tok");
    expect(readCookie('access_token="quoted"', "access_token")).toBe("quoted");
    expect(readCookie("xaccess_token=1", "access_token")).toBeUndefined();
    expect(readCredentials(h({ cookie: "theme=dark; access_token=tok" }), url, [])).toEqual({ token: "tok", source: "cookie" });
  });

  it("honours the cookie only from listed or same origins, or non-browser clients", () => {
    expect(cookieAllowed(h({ origin: "https://app.example.com" }), url, origins)).toBe(true);
    expect(cookieAllowed(h({ origin: "https://evil.example.net" }), url, origins)).toBe(false);
    expect(cookieAllowed(h({ origin: "null" }), url, origins)).toBe(false);
    expect(cookieAllowed(h({ origin: "http://api.example.com:8080" }), url, origins)).toBe(true);
    expect(cookieAllowed(h({}), url, origins)).toBe(true);
    expect(cookieAllowed(h({ "sec-fetch-site": "same-origin" }), url, origins)).toBe(true);
    expect(cookieAllowed(h({ "sec-fetch-site": "cross-site" }), url, origins)).toBe(false);
    expect(cookieAllowed(h({ "sec-fetch-site": "same-site" }), url, origins)).toBe(false);
    const refused = readCredentials(h({ origin: "https://evil.example.net", cookie: "access_token=tok" }), url, origins);
    expect(refused).toEqual({ problem: "the access_token cookie is not accepted from origin https://evil.example.net: it is not in ANALYTICS_CORS_ORIGINS" });
  });
});

describe("minting and the signing secret", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "secret-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("parses lifetimes", () => {
    expect(parseTtl("30d")).toBe(30 * 86400);
    expect(parseTtl("15m")).toBe(900);
    expect(parseTtl("2w")).toBe(14 * 86400);
    expect(parseTtl("90")).toBe(90);
    expect(() => parseTtl("soon")).toThrow(/bad ttl "soon"/);
    expect(() => parseTtl("0d")).toThrow(/bad ttl/);
  });

  it("creates the secret once, mode 0600, and reuses it", async () => {
    const dataDir = join(dir, "data");
    const first = await loadSigningSecret({ jwtSecret: undefined, dataDir });
    expect(first.source).toBe("created");
    expect((await stat(first.path!)).mode & 0o777).toBe(0o600);
    const again = await loadSigningSecret({ jwtSecret: undefined, dataDir });
    expect(again.source).toBe("file");
    expect(Buffer.from(again.key).toString()).toBe(Buffer.from(first.key).toString());
    expect((await readFile(first.path!, "utf8")).trim()).toHaveLength(43);
  });

  it("lets concurrent first users agree on one secret", async () => {
    const dataDir = join(dir, "race");
    const all = await Promise.all(Array.from({ length: 5 }, () => loadSigningSecret({ jwtSecret: undefined, dataDir })));
    expect(all.filter((s) => s.source === "created")).toHaveLength(1);
    expect(new Set(all.map((s) => Buffer.from(s.key).toString())).size).toBe(1);
  });

  it("prefers ANALYTICS_JWT_SECRET", async () => {
    const s = await loadSigningSecret({ jwtSecret: "x".repeat(32), dataDir: join(dir, "unused") });
    expect(s.source).toBe("env");
    await expect(stat(join(dir, "unused"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
