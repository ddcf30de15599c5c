/**
 * The `token` CLI command and the first-start notice. Both use the signing secret the server
 * uses (env or data folder), so a minted token works against the server with the same config.
 */
import { parseArgs } from "node:util";
import type { Config } from "../config.js";
import { mintToken, parseTtl } from "./mint-token.js";
import { ROLES, type Role } from "./principal.js";
import { loadSigningSecret } from "./signing-secret.js";

/** Usage line for the main CLI's help. */
export const TOKEN_USAGE = "  token --role ROLE --sub SUBJECT [--ttl 30d]   print a signed token (roles: admin, service, user, device)";

/** Lifetime of the admin token printed on first start. */
const FIRST_START_TTL = "30d";

type Write = (text: string) => void;

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
  const secret = await loadSigningSecret(config);
  if (secret.source === "created") err(`created a new signing secret in ${secret.path} (the server will use it)\n`);
  if (secret.warning) err(`warning: ${secret.warning}\n`);
  const token = await mintToken(secret.key, { role: role as Role, sub: values.sub, ttlSeconds, issuer: config.jwtIssuer, audience: config.jwtAudience });
  out(token + "\n");
}

/**
 * Before the first start without `ANALYTICS_JWT_SECRET`: creates the secret in the data folder
 * and writes an admin token and how to mint others. Later starts write nothing.
 */
export async function announceFirstStart(config: Config, out: Write): Promise<void> {
  const secret = await loadSigningSecret(config);
  if (secret.source !== "created") return;
  const token = await mintToken(secret.key, {
    role: "admin",
    sub: "admin",
    ttlSeconds: parseTtl(FIRST_START_TTL),
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
  });
  out(
    [
      "",
      `No ANALYTICS_JWT_SECRET is set: created a signing secret in ${secret.path} (mode 0600; keep it private).`,
      "Every RPC except health and reflection needs a token. An admin token, valid for 30 days:",
      "",
      `  export TOKEN=${token}`,
      "",
      'Send it as "authorization: Bearer $TOKEN" (buf curl: -H "authorization: Bearer $TOKEN").',
      "Mint others with the same secret:",
      "  npm run -s cli -- token --role service --sub billing-service --ttl 30d",
      "  npm run -s cli -- token --role device --sub device-123 --ttl 30d",
      "",
      "",
    ].join("\n"),
  );
}
