/**
 * The `token` CLI command and the first-start notice. Both use the signing secret the server
 * uses (env or data folder), so a minted token works against the server with the same config.
 */
import { randomBytes } from "node:crypto";
import { chmod, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Config } from "../config.js";
import { mintToken, parseTtl } from "../auth/mint-token.js";
import { ROLES, type Role } from "../auth/principal.js";
import { hs256Accepted, loadSigningSecret } from "../auth/signing-secret.js";
import type { Write } from "./usage.js";

/** Usage line for the main CLI's help. */
export const TOKEN_USAGE = "  token --role ROLE --sub SUBJECT [--ttl 24h]   print a signed token valid for --ttl (roles: admin, service, user, device)";

/** File name, inside the data folder, of the admin token written on first start. */
export const ADMIN_TOKEN_FILE = "admin-token";

/**
 * Lifetime of the first-start admin token: long enough to try the service and mint proper tokens
 * with the CLI, short enough that a copy left in a backup or a terminal's scrollback soon is
 * worthless.
 */
export const FIRST_START_TTL_SECONDS = 3600;

const NO_HS256 =
  "a JWKS is configured (ANALYTICS_JWKS_URL or ANALYTICS_JWKS_FILE) and ANALYTICS_JWT_SECRET is not set, so the server " +
  "accepts no HS256 tokens and a minted one would not work: get tokens from the identity provider, or set " +
  "ANALYTICS_JWT_SECRET to accept HS256 tokens beside the JWKS";

/**
 * `token --role device --sub device-123 --ttl 30d`: writes the token alone on one line to
 * `out` (so `TOKEN=$(npm run -s cli -- token ...)` works), notes to `err`.
 *
 * @throws Error with a usage message on bad arguments.
 */
export async function runTokenCommand(config: Config, args: string[], out: Write, err: Write): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { role: { type: "string" }, sub: { type: "string" }, ttl: { type: "string", default: "24h" } },
    strict: true,
  });
  const role = values.role;
  if (role === undefined || !(ROLES as readonly string[]).includes(role)) throw new Error(`token needs --role, one of ${ROLES.join(", ")}`);
  if (values.sub === undefined || values.sub.trim() === "") throw new Error("token needs --sub (a user id, service name or device id)");
  const ttlSeconds = parseTtl(values.ttl ?? "24h");
  if (!hs256Accepted(config)) throw new Error(NO_HS256);
  const secret = await loadSigningSecret(config);
  if (secret.source === "created") err(`created a new signing secret in ${secret.path} (the server will use it)\n`);
  if (secret.warning) err(`warning: ${secret.warning}\n`);
  const token = await mintToken(secret.key, { role: role as Role, sub: values.sub, ttlSeconds, issuer: config.jwtIssuer, audience: config.jwtAudience });
  out(token + "\n");
}

/** A path as a shell word, so the printed command can be pasted as it is. */
const shellWord = (path: string) => (/^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", "'\\''")}'`);

/**
 * Writes `text` to `path` readable by its owner only. The text goes to a new file created with
 * mode 0600 (exclusively, so nothing else's file is written through) and is then renamed over
 * `path`: no moment exists where the token sits in a file with an older, wider mode.
 */
async function writePrivateFile(path: string, text: string): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeFile(temporary, text, { flag: "wx", mode: 0o600 });
    // The mode given to writeFile is filtered by the umask; make sure.
    await chmod(temporary, 0o600);
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}

/**
 * Before the first start without `ANALYTICS_JWT_SECRET`: creates the secret in the data folder,
 * writes a short-lived admin token to {@link ADMIN_TOKEN_FILE} beside it (mode 0600) and tells
 * `out` where it is and how to mint others. The token itself is never written to `out`: stdout is
 * what log shipping keeps. Later starts, and a server that accepts no HS256 tokens, write nothing.
 */
export async function announceFirstStart(config: Config, out: Write, nowMs: number = Date.now()): Promise<void> {
  if (!hs256Accepted(config)) return;
  const secret = await loadSigningSecret(config);
  if (secret.source !== "created") return;
  const token = await mintToken(
    secret.key,
    { role: "admin", sub: "admin", ttlSeconds: FIRST_START_TTL_SECONDS, issuer: config.jwtIssuer, audience: config.jwtAudience },
    nowMs,
  );
  const path = join(config.dataDir, ADMIN_TOKEN_FILE);
  await writePrivateFile(path, token + "\n");
  const until = new Date((Math.floor(nowMs / 1000) + FIRST_START_TTL_SECONDS) * 1000).toISOString();
  out(
    [
      "",
      `No ANALYTICS_JWT_SECRET is set: created a signing secret in ${secret.path} (mode 0600; keep it private).`,
      `Every RPC except health and reflection needs a token. An admin token, valid for 1 hour (until ${until}),`,
      `is in ${path} (mode 0600; the token is not printed):`,
      "",
      `  export TOKEN=$(cat ${shellWord(path)})`,
      "",
      'Send it as "authorization: Bearer $TOKEN" (buf curl: -H "authorization: Bearer $TOKEN").',
      "Mint a longer-lived admin token, and others, with the same secret:",
      "  npm run -s cli -- token --role admin --sub ops --ttl 30d",
      "  npm run -s cli -- token --role service --sub billing-service --ttl 30d",
      "  npm run -s cli -- token --role device --sub device-123 --ttl 30d",
      "",
      "",
    ].join("\n"),
  );
}
