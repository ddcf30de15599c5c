/**
 * The HS256 secret tokens are signed with: `ANALYTICS_JWT_SECRET` when set, otherwise a random
 * one kept in the data folder (created on first use, mode 0600). There is no unauthenticated
 * mode, so a fresh `npm start` is protected without any setup.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** The settings that choose the signing secret (fields of the server's `Config`). */
export interface SigningSecretSettings {
  /** `ANALYTICS_JWT_SECRET`: the secret itself, when set. */
  readonly jwtSecret: string | undefined;
  readonly jwksUrl: string | undefined;
  readonly jwksFile: string | undefined;
  /** The data folder, where a generated secret is kept. */
  readonly dataDir: string;
}

/**
 * Whether the server accepts HS256 tokens: always without a JWKS; beside a JWKS only with an
 * explicit `ANALYTICS_JWT_SECRET`. The data-folder secret is a zero-setup default, and a second,
 * silently created way in next to an identity provider is what a JWKS set-up does not expect.
 */
export function hs256Accepted(config: Pick<SigningSecretSettings, "jwtSecret" | "jwksUrl" | "jwksFile">): boolean {
  return config.jwtSecret !== undefined || (config.jwksUrl === undefined && config.jwksFile === undefined);
}

/** File name of the generated secret inside the data folder. */
export const SECRET_FILE = "jwt-secret";

/** The secret and where it came from. */
export interface SigningSecret {
  /** Key bytes: the UTF-8 bytes of the secret text (what other signers must use too). */
  readonly key: Uint8Array;
  /** `env`: ANALYTICS_JWT_SECRET; `file`: an existing data-folder file; `created`: just generated. */
  readonly source: "env" | "file" | "created";
  /** The file, for `file` and `created`. */
  readonly path?: string;
  /** Set when the file is readable by others than its owner. */
  readonly warning?: string;
}

/**
 * Loads the signing secret, creating the data-folder file when there is none. Safe against a
 * concurrent creator (the CLI and the server): the file is created exclusively, and a loser
 * reads the winner's secret.
 */
export async function loadSigningSecret(config: Pick<SigningSecretSettings, "jwtSecret" | "dataDir">): Promise<SigningSecret> {
  if (config.jwtSecret !== undefined) return { key: new TextEncoder().encode(config.jwtSecret), source: "env" };
  const path = join(config.dataDir, SECRET_FILE);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const text = randomBytes(32).toString("base64url");
  try {
    await writeFile(path, text + "\n", { flag: "wx", mode: 0o600 });
    // The mode given to writeFile is filtered by the umask; make sure.
    await chmod(path, 0o600);
    return { key: new TextEncoder().encode(text), source: "created", path };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const existing = (await readFile(path, "utf8")).trim();
  if (existing.length < 32) throw new Error(`${path} holds a secret shorter than 32 characters; delete it to get a new one`);
  const mode = (await stat(path)).mode & 0o777;
  const warning = (mode & 0o077) !== 0 ? `${path} is readable by other users (mode ${mode.toString(8)}): chmod 600 it` : undefined;
  return { key: new TextEncoder().encode(existing), source: "file", path, ...(warning ? { warning } : {}) };
}
