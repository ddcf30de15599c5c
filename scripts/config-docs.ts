/**
 * Generates docs/CONFIGURATION.md from src/config.ts: every variable the service reads
 * (`CONFIG_SETTINGS`), its built-in default (the value the config falls back to) and its meaning
 * (the TSDoc of the matching `Config` field). `npx tsx scripts/config-docs.ts` (or
 * `npm run docs:config`) writes the file; `--check` only compares and fails when the committed
 * file is stale, as `test/unit/config-docs.test.ts` does.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isDeepStrictEqual } from "node:util";
import ts from "typescript";
import { parseRateLimits, type RateLimits } from "../src/auth/rate-limit-policy.js";
import { CLIENT_VARIABLES, CONFIG_SETTINGS, DEFAULT_METRICS_MAX_STATE_BYTES, writerStrategyOf, type Config } from "../src/config.js";
import { DEFAULT_REQUEST_LOG_SKIP } from "../src/server/request-log-fields.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Where the generated page lives, relative to the repository root. */
export const CONFIG_DOCS_PATH = "docs/CONFIGURATION.md";

type Key = keyof Config;

/** The TSDoc text of each field of the `Config` interface in src/config.ts, by field name. */
export function configFieldDocs(source: string): Map<string, string> {
  const file = ts.createSourceFile("config.ts", source, ts.ScriptTarget.Latest, true);
  const docs = new Map<string, string>();
  const visit = (node: ts.Node): void => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === "Config") {
      for (const member of node.members) {
        if (!ts.isPropertySignature(member) || !ts.isIdentifier(member.name)) continue;
        const text = ts
          .getJSDocCommentsAndTags(member)
          .filter(ts.isJSDoc)
          .map((doc) => ts.getTextOfJSDocComment(doc.comment) ?? "")
          .join(" ");
        docs.set(member.name.text, text.replace(/\s+/g, " ").trim());
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return docs;
}

/** A default in the variable's own terms, as a reader would set it. */
function defaultText(key: Key, name: string, fallback: unknown): string {
  const code = (v: string) => `\`${v}\``;
  // Values the config stores in other terms than the variable's, or that mean something else unset.
  if (key === "metricsMaxStateBytes") {
    if (fallback !== DEFAULT_METRICS_MAX_STATE_BYTES) throw new Error(`${name}: default changed, update scripts/config-docs.ts`);
    return "1/8 of the V8 heap limit (~518 with a 4 GiB heap)";
  }
  if (name.endsWith("_MB") && typeof fallback === "number") {
    const mib = fallback / (1024 * 1024);
    if (!Number.isInteger(mib)) throw new Error(`${name}: default ${fallback} bytes is not whole MiB`);
    return code(String(mib));
  }
  if (key === "writerStrategy" && fallback === undefined) {
    const withUrl = writerStrategyOf({ writerStrategy: undefined, databaseUrl: "postgres://db" });
    const embedded = writerStrategyOf({ writerStrategy: undefined, databaseUrl: undefined });
    return `${code(withUrl)} with \`DATABASE_URL\`, else ${code(embedded)}`;
  }
  if (key === "requestLogSkip" && fallback === undefined) return code(DEFAULT_REQUEST_LOG_SKIP.join(","));
  if (key === "rateLimits") {
    const limits = fallback as RateLimits;
    const text = Object.entries(limits)
      .map(([role, limit]) => (limit === undefined ? `${role}=off` : `${role}=${limit.perSecond}/s:${limit.burst}`))
      .join(",");
    if (!isDeepStrictEqual(parseRateLimits(text), limits)) throw new Error(`${name}: the default does not round-trip as ${text}`);
    return code(text);
  }
  if (fallback === undefined) return "unset";
  if (typeof fallback === "number" || typeof fallback === "boolean" || typeof fallback === "string") return code(String(fallback));
  if (Array.isArray(fallback)) return fallback.length === 0 ? "none" : code(fallback.join(","));
  if (typeof fallback === "object" && fallback !== null && Object.keys(fallback).length === 0) return "none";
  throw new Error(`${name}: no way to show its default; teach scripts/config-docs.ts`);
}

/** The TSDoc of a field as a table cell: links resolved, the field's own variable name left out. */
function meaningText(name: string, doc: string, names: ReadonlyMap<string, string>): string {
  let text = doc.replace(/\{@link\s+([\w.]+)\s*\}/g, (_, target: string) => `\`${names.get(target) ?? target}\``);
  const own = `\`${name}\``;
  text = text
    .replace(` (${own})`, "")
    .replace(`(${own}, `, "(")
    .replace(`(${own}: `, "(")
    .replace(`(${own}; `, "(");
  if (text.includes(own)) text = text.replace(own, "this");
  return text.replace(/\.$/, "").replace(/\|/g, "\\|");
}

/** A number stated as "default N" in a field's TSDoc must be the default the config uses. */
function checkStatedDefault(key: Key, name: string, doc: string, fallback: unknown): void {
  const stated = /\bdefault (-?\d[\d_]*(?:\.\d+)?)(?![\d.]|\s*[KMG]i?B|\/)/.exec(doc);
  if (!stated || typeof fallback !== "number" || name.endsWith("_MB")) return;
  if (Number(stated[1]!.replaceAll("_", "")) !== fallback) {
    throw new Error(`src/config.ts: the TSDoc of ${key} says default ${stated[1]}, the config uses ${fallback}`);
  }
}

const CLIENT_LIST = Object.entries(CLIENT_VARIABLES)
  .map(([name, what]) => `\`${name}\` (${what})`)
  .join("; ");

const HEADER = `# Configuration

<!-- Generated by scripts/config-docs.ts from src/config.ts: edit the TSDoc of \`Config\` there and
run \`npm run docs:config\`; test/unit/config-docs.test.ts fails while this file is stale. -->

Environment variables, read and validated once at start (\`src/config.ts\`); a malformed value stops
the server with a message naming the variable (secrets shown as \`(hidden)\`, passwords in URLs as
\`***\`). Unset and empty mean the default. The server logs one JSON object per line on stderr.
An unknown \`ANALYTICS_*\` variable also stops it, naming the closest known setting (a misspelt
setting would otherwise keep its default silently); client-side variables the docs tell people to
set are left alone: ${CLIENT_LIST}.

| variable | default | meaning |
| --- | --- | --- |
`;

const FOOTER = `
Rules between settings (checked at start, in \`loadConfig\`):
- \`ANALYTICS_WRITER_STRATEGY=copy\` needs \`DATABASE_URL\`: COPY hangs the embedded database's socket.
- Set at most one of \`ANALYTICS_JWKS_URL\` and \`ANALYTICS_JWKS_FILE\`; with either,
  \`ANALYTICS_JWT_ISSUER\` and \`ANALYTICS_JWT_AUDIENCE\` must be set too.

Where the settings are explained at length:
- tokens, key sources, revocation, CORS and the cookie, rate limits, client IPs:
  [OPERATIONS.md](OPERATIONS.md#authentication-and-browsers) and
  [OPERATIONS.md](OPERATIONS.md#tokens-first-start-revocation-and-key-sources);
- connection limits, file descriptors (keep \`ulimit -n\` above \`ANALYTICS_MAX_CONNECTIONS\`):
  [OPERATIONS.md](OPERATIONS.md#connection-limits); per-method message caps under
  \`ANALYTICS_MAX_MESSAGE_BYTES\`: [OPERATIONS.md](OPERATIONS.md#per-method-message-caps);
- the write path (\`ANALYTICS_WRITER_*\`): [OPERATIONS.md](OPERATIONS.md#the-write-path-under-stress),
  [ARCHITECTURE.md](ARCHITECTURE.md#writes-durable-before-acknowledged);
- retention and rollups: [OPERATIONS.md](OPERATIONS.md#retention-and-rollups);
- the device-metrics filter (\`ANALYTICS_METRICS_*\`): [DEVICE-METRICS.md](DEVICE-METRICS.md),
  [OPERATIONS.md](OPERATIONS.md#bounded-state-and-the-embedded-database).
`;

/** docs/CONFIGURATION.md as src/config.ts describes it now. */
export function renderConfigDocs(configSource = readFileSync(join(root, "src/config.ts"), "utf8")): string {
  const docs = configFieldDocs(configSource);
  const settings = Object.entries(CONFIG_SETTINGS) as [Key, { readonly name: string; readonly fallback: unknown }][];
  const names = new Map<string, string>(settings.map(([key, s]) => [key, s.name]));
  const rows = settings.map(([key, { name, fallback }]) => {
    const doc = docs.get(key);
    if (doc === undefined || doc === "") throw new Error(`src/config.ts: Config.${key} (${name}) has no TSDoc to document it with`);
    checkStatedDefault(key, name, doc, fallback);
    return `| \`${name}\` | ${defaultText(key, name, fallback)} | ${meaningText(name, doc, names)} |`;
  });
  return `${HEADER}${rows.join("\n")}\n${FOOTER}`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const path = join(root, CONFIG_DOCS_PATH);
  const fresh = renderConfigDocs();
  if (process.argv.includes("--check")) {
    if (readFileSync(path, "utf8") !== fresh) {
      console.error(`${CONFIG_DOCS_PATH} is stale: run npm run docs:config`);
      process.exit(1);
    }
  } else {
    writeFileSync(path, fresh);
    console.log(`wrote ${CONFIG_DOCS_PATH}`);
  }
}
