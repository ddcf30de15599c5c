import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { base64url, decodeJwt, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cookieAllowed, readCookie, readCredentials } from "../../src/auth/credentials.js";
import { mintToken, parseTtl } from "../../src/auth/mint-token.js";
import { loadSigningSecret } from "../../src/auth/signing-secret.js";
import { ADMIN_TOKEN_FILE, announceFirstStart, FIRST_START_TTL_SECONDS, runTokenCommand } from "../../src/cli/token.js";
import { createTokenVerifier, createTokenVerifierFromConfig, readJwksFile, type TokenVerifier } from "../../src/auth/token-verifier.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/util/logger.js";

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
    ["HS512", async () => new SignJWT({ sub: "u", role: "admin", exp: NOW / 1000 + 60 }).setProtectedHeader({ alg: "HS512" }).sign(secret), /^invalid token: its signing algorithm is not accepted$/],
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
    expect((await failure(strict, wrongAud)).rawMessage).toBe("invalid token: audience not accepted");
    const noIss = await mintToken(secret, { role: "user", sub: "u", ttlSeconds: 60, audience: "analytics" }, NOW);
    expect((await failure(strict, noIss)).rawMessage).toBe("invalid token: issuer not accepted");
  });

  it("tells a refused caller nothing of the configured issuer, audience or algorithms, and logs them at debug", async () => {
    const lines: string[] = [];
    const log = createLogger("debug", (line) => lines.push(line));
    const strict = createTokenVerifier({ secret, issuer: "https://secret-idp.internal", audience: "analytics-prod", log, now: () => NOW });
    const tokens = [
      await mintToken(secret, { role: "user", sub: "u", ttlSeconds: 60, issuer: "https://other.example.com", audience: "analytics-prod" }, NOW),
      await mintToken(secret, { role: "user", sub: "u", ttlSeconds: 60, issuer: "https://secret-idp.internal", audience: "other" }, NOW),
      await mintToken(secret, { role: "user", sub: "u", ttlSeconds: 60 }, NOW),
      await new SignJWT({ sub: "u", role: "user", exp: NOW / 1000 + 60 }).setProtectedHeader({ alg: "HS384" }).sign(secret),
    ];
    const messages = [];
    for (const token of tokens) {
      const err = await failure(strict, token);
      expect(err.code).toBe(Code.Unauthenticated);
      messages.push(err.rawMessage);
    }
    expect(messages).toEqual([
      "invalid token: issuer not accepted",
      "invalid token: audience not accepted",
      "invalid token: issuer not accepted",
      "invalid token: its signing algorithm is not accepted",
    ]);
    for (const m of messages) expect(m).not.toMatch(/secret-idp|analytics-prod|HS256|RS256/);
    const logged = lines.map((l) => JSON.parse(l) as { level: string; msg: string; reason: string });
    expect(logged.map((l) => [l.level, l.msg])).toEqual(Array.from({ length: 4 }, () => ["debug", "token refused"]));
    expect(logged[0]!.reason).toBe('issuer "https://other.example.com" is not "https://secret-idp.internal"');
    expect(logged[1]!.reason).toBe('audience "other" does not include "analytics-prod"');
    expect(logged[3]!.reason).toBe("algorithm HS384 is not accepted (accepted: HS256)");
    for (const l of lines) expect(l).not.toContain(tokens[0]!.split(".")[2]!);
  });

  describe("revocation by issue time (ANALYTICS_TOKENS_NOT_BEFORE)", () => {
    const CUT = NOW - 600_000;
    const revoking = createTokenVerifier({ secret, notBeforeMs: CUT, now: () => NOW });

    it("refuses tokens issued before the cut-off and accepts those issued at or after it", async () => {
      const before = await mintToken(secret, { role: "admin", sub: "a", ttlSeconds: 86_400 }, CUT - 1000);
      const err = await failure(revoking, before);
      expect(err.code).toBe(Code.Unauthenticated);
      expect(err.rawMessage).toBe("invalid token: revoked (issued before the cut-off); get a new token");
      await expect(verify(before)).resolves.toMatchObject({ role: "admin", subject: "a" });
      await expect(revoking(await mintToken(secret, { role: "admin", sub: "a", ttlSeconds: 3600 }, CUT))).resolves.toMatchObject({ role: "admin", subject: "a" });
      await expect(revoking(await mintToken(secret, { role: "admin", sub: "a", ttlSeconds: 60 }, NOW))).resolves.toMatchObject({ role: "admin", subject: "a" });
    });

    it("refuses a token without iat while a cut-off is set", async () => {
      const noIat = await sign({ sub: "u", role: "user", exp: NOW / 1000 + 60 });
      await expect(verify(noIat)).resolves.toMatchObject({ role: "user", subject: "u" });
      const err = await failure(revoking, noIat);
      expect([err.code, err.rawMessage]).toEqual([Code.Unauthenticated, 'invalid token: claim "iat" is required']);
      expect((await failure(revoking, await sign({ sub: "u", role: "user", exp: NOW / 1000 + 60, iat: "yesterday" }))).code).toBe(Code.Unauthenticated);
    });

    it("is read from the configuration by the server's verifier", async () => {
      const dir = await mkdtemp(join(tmpdir(), "revoke-"));
      try {
        const config = loadConfig({ ANALYTICS_DATA_DIR: dir, ANALYTICS_JWT_SECRET: "s".repeat(40), ANALYTICS_TOKENS_NOT_BEFORE: new Date(Date.now() - 60_000).toISOString() });
        const server = await createTokenVerifierFromConfig(config);
        const key = new TextEncoder().encode("s".repeat(40));
        const old = await mintToken(key, { role: "admin", sub: "a", ttlSeconds: 3600 }, Date.now() - 120_000);
        expect((await failure(server, old)).rawMessage).toMatch(/^invalid token: revoked/);
        await expect(server(await mintToken(key, { role: "admin", sub: "a", ttlSeconds: 3600 }))).resolves.toMatchObject({ role: "admin", subject: "a" });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
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
      expect((await failure(verify, token)).rawMessage).toBe("invalid token: its signing algorithm is not accepted");
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

describe("a JWKS beside the HS256 secret", () => {
  let dir: string;
  let privateKey: CryptoKey;
  const ISSUER = "https://id.example.com";
  const AUDIENCE = "analytics";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "jwks-config-"));
    const pair = await generateKeyPair("ES256");
    privateKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
    await writeFile(join(dir, "jwks.json"), JSON.stringify({ keys: [jwk] }));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const env = (dataDir: string, extra: Record<string, string> = {}) =>
    loadConfig({ ANALYTICS_DATA_DIR: dataDir, ANALYTICS_JWKS_FILE: join(dir, "jwks.json"), ANALYTICS_JWT_ISSUER: ISSUER, ANALYTICS_JWT_AUDIENCE: AUDIENCE, ...extra });
  const es256 = () =>
    new SignJWT({ role: "service", sub: "billing" }).setProtectedHeader({ alg: "ES256", kid: "k1" }).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime("5m").sign(privateKey);

  it("refuses HS256 tokens signed with the data folder's secret, and does not create one", async () => {
    const dataDir = join(dir, "data-auto");
    // A secret left in the data folder from before the JWKS was configured.
    const left = await loadSigningSecret({ jwtSecret: undefined, dataDir });
    const verifier = await createTokenVerifierFromConfig(env(dataDir));
    await expect(verifier(await es256())).resolves.toMatchObject({ role: "service", subject: "billing" });
    const forged = await mintToken(left.key, { role: "admin", sub: "a", ttlSeconds: 60, issuer: ISSUER, audience: AUDIENCE });
    const err = await failure(verifier, forged);
    expect([err.code, err.rawMessage]).toEqual([Code.Unauthenticated, "invalid token: its signing algorithm is not accepted"]);
    const fresh = join(dir, "data-fresh");
    await createTokenVerifierFromConfig(env(fresh));
    await expect(stat(join(fresh, "jwt-secret"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("accepts HS256 beside the JWKS when ANALYTICS_JWT_SECRET is given", async () => {
    const explicit = "e".repeat(40);
    const verifier = await createTokenVerifierFromConfig(env(join(dir, "data-explicit"), { ANALYTICS_JWT_SECRET: explicit }));
    await expect(verifier(await es256())).resolves.toMatchObject({ role: "service" });
    const hs = await mintToken(new TextEncoder().encode(explicit), { role: "admin", sub: "a", ttlSeconds: 60, issuer: ISSUER, audience: AUDIENCE });
    await expect(verifier(hs)).resolves.toMatchObject({ role: "admin", subject: "a" });
  });

  it("the token command refuses to mint a token such a server would refuse", async () => {
    const out: string[] = [];
    await expect(runTokenCommand(env(join(dir, "data-cli")), ["--role", "admin", "--sub", "a"], (t) => out.push(t), () => {})).rejects.toThrow(
      /a JWKS is configured .* and ANALYTICS_JWT_SECRET is not set, so the server accepts no HS256 tokens/,
    );
    expect(out).toEqual([]);
  });
});

describe("the token command and the first start", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "first-start-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("puts iat in every token it mints", async () => {
    const config = loadConfig({ ANALYTICS_DATA_DIR: join(dir, "cli") });
    const out: string[] = [];
    const before = Math.floor(Date.now() / 1000);
    await runTokenCommand(config, ["--role", "device", "--sub", "d-1", "--ttl", "2h"], (t) => out.push(t), () => {});
    const claims = decodeJwt(out.join("").trim());
    expect(claims.iat).toBeGreaterThanOrEqual(before);
    expect(claims.iat).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    expect(claims.exp! - claims.iat!).toBe(7200);
  });

  it("writes a one-hour admin token to a 0600 file, prints only where it is, and only once", async () => {
    const dataDir = join(dir, "first");
    const config = loadConfig({ ANALYTICS_DATA_DIR: dataDir });
    const printed: string[] = [];
    const now = Date.now();
    await announceFirstStart(config, (t) => printed.push(t), now);
    const path = join(dataDir, ADMIN_TOKEN_FILE);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const token = (await readFile(path, "utf8")).trim();
    const text = printed.join("");
    expect(text).not.toContain(token);
    expect(text).not.toMatch(/ey[A-Za-z0-9_-]{10,}/);
    expect(text).toContain(`export TOKEN=$(cat ${path})`);
    expect(text).toContain("npm run -s cli -- token --role admin --sub ops --ttl 30d");
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ role: "admin", sub: "admin", iat: Math.floor(now / 1000) });
    expect(claims.exp! - claims.iat!).toBe(FIRST_START_TTL_SECONDS);
    expect(FIRST_START_TTL_SECONDS).toBe(3600);
    expect(text).toContain(`valid for 1 hour (until ${new Date(claims.exp! * 1000).toISOString()})`);
    // It works now, and not once the hour (and the clock skew allowed) is over.
    const key = (await loadSigningSecret(config)).key;
    await expect(createTokenVerifier({ secret: key, now: () => now + 3590_000 })(token)).resolves.toMatchObject({ role: "admin", subject: "admin" });
    const later = await failure(createTokenVerifier({ secret: key, now: () => now + 3610_000 }), token);
    expect(later.rawMessage).toMatch(/^invalid token: expired at /);
    // A later start prints and writes nothing.
    await announceFirstStart(config, (t) => printed.push(t));
    expect(printed).toHaveLength(1);
    expect((await readFile(path, "utf8")).trim()).toBe(token);
  });
});
