/**
 * The docs' `buf curl` examples, run verbatim against the real server: every ```sh block of
 * README.md and of docs/*.md (README first, then the pages in name order) that contains
 * `buf curl` is run by bash, line by line as a reader would paste it, with only the address
 * (`http://localhost:8080` becomes the test server's) and the tokens (`$TOKEN` and `$ADMIN_TOKEN`
 * are admin tokens, as the first start prints) provided, and the `<id from LogError>` placeholder
 * replaced by the id an earlier example's LogError returned. `npm run -s cli -- token ...` inside a
 * block runs the real CLI with the server's secret.
 *
 * A block preceded by `<!-- readme-test: skip (reason) -->` is not run (say why).
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { mintTestToken } from "../../test/support/auth.js";
import { useTestServer } from "../../test/support/test-server.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");

/** One fenced shell block of a Markdown page. */
interface ShellBlock {
  /** The page, relative to the repository root (set by {@link docBlocks}). */
  readonly file?: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The heading the block is under. */
  readonly section: string;
  /** Commands, continuation lines joined, comments dropped. */
  readonly commands: readonly string[];
  /** Why it is skipped, when marked. */
  readonly skip?: string;
}

/** Fenced ```sh / ```bash / ```shell blocks (indented ones in lists too), in order. */
export function shellBlocks(markdown: string): ShellBlock[] {
  const lines = markdown.split("\n");
  const blocks: ShellBlock[] = [];
  let section = "";
  for (let i = 0; i < lines.length; i++) {
    const heading = /^#{1,6}\s+(.*)$/.exec(lines[i]!);
    if (heading) section = heading[1]!.trim();
    const open = /^(\s*)```(sh|bash|shell)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    let previous = i - 1;
    while (previous >= 0 && lines[previous]!.trim() === "") previous--;
    const marker = previous >= 0 ? /<!--\s*readme-test:\s*skip\s*(.*?)\s*-->/.exec(lines[previous]!) : null;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++) body.push(lines[j]!.slice(Math.min(indent, lines[j]!.search(/\S|$/))));
    const commands: string[] = [];
    let current = "";
    for (const raw of body) {
      const text = raw.trimEnd();
      if (current === "" && (text.trim() === "" || text.trimStart().startsWith("#"))) continue;
      if (text.endsWith("\\")) current += `${text.slice(0, -1)} `;
      else {
        commands.push(`${current}${text}`.trim());
        current = "";
      }
    }
    blocks.push({ line: i + 1, section, commands, skip: marker ? marker[1] || "marked" : undefined });
    i = j;
  }
  return blocks;
}

/** What one command printed and how it ended. */
interface CommandRun {
  readonly command: string;
  readonly status: number;
  readonly stdout: string;
}

/** Runs a block's commands in one bash process (so assignments carry over) and splits the output per command. */
function runBlock(commands: readonly string[], env: NodeJS.ProcessEnv): Promise<{ runs: CommandRun[]; stderr: string }> {
  const marker = "@@readme-test-status@@";
  const script = commands.map((c) => `${c}\nprintf '\\n${marker}%s\\n' "$?"`).join("\n");
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", script], { cwd: root, env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", () => {
      const parts = stdout.split(new RegExp(`\\n${marker}(\\d+)\\n`));
      const runs = commands.map((command, k) => ({ command, stdout: (parts[2 * k] ?? "").trim(), status: Number(parts[2 * k + 1] ?? -1) }));
      resolve({ runs, stderr });
    });
  });
}

/** The pages whose examples run: the README, then every page of docs/ in name order. */
export const DOC_FILES: readonly string[] = [
  "README.md",
  ...readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`),
];

/** The shell blocks of every page in {@link DOC_FILES}, in that order, each knowing its page. */
function docBlocks(): ShellBlock[] {
  return DOC_FILES.flatMap((file) => shellBlocks(readFileSync(join(root, file), "utf8")).map((b) => ({ ...b, file })));
}

const t = useTestServer();
const blocks = docBlocks().filter((b) => b.commands.some((c) => c.includes("buf curl")));

describe("README and docs buf curl examples, verbatim", () => {
  it("finds the examples", () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    // The pages the README's examples moved to are read too.
    for (const file of ["README.md", "docs/EVENTS.md", "docs/DEVICE-METRICS.md", "docs/QUERIES.md"]) {
      expect(blocks.some((b) => b.file === file), file).toBe(true);
    }
    expect(blocks.flatMap((b) => b.commands).filter((c) => c.includes("buf curl")).length).toBeGreaterThanOrEqual(6);
  });

  it("runs every block against the server and each command succeeds", { timeout: 120_000 }, async () => {
    const admin = await mintTestToken(t.server.config, "admin", "readme-admin");
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ANALYTICS_")));
    Object.assign(env, { TOKEN: admin, ADMIN_TOKEN: admin, ANALYTICS_DATA_DIR: t.server.config.dataDir, LOG_LEVEL: "warn" });
    const placeholders = new Map<string, string>();
    const all: CommandRun[] = [];
    for (const block of blocks) {
      if (block.skip !== undefined) continue;
      const commands = block.commands.map((c) => {
        let out = c.replaceAll("http://localhost:8080", t.server.url());
        for (const [from, to] of placeholders) out = out.replaceAll(from, to);
        return out;
      });
      const { runs, stderr } = await runBlock(commands, env);
      for (const run of runs) {
        expect({ at: `${block.file}:${block.line} (${block.section})`, command: run.command, status: run.status, stderr: run.status === 0 ? "" : stderr }).toMatchObject({ status: 0 });
        if (/\/LogError\b/.test(run.command)) placeholders.set("<id from LogError>", (JSON.parse(run.stdout) as { id: string }).id);
      }
      all.push(...runs);
    }

    // What the examples promise, seen from the other side.
    const out = (pattern: RegExp) => all.filter((r) => pattern.test(r.command)).map((r) => r.stdout);
    expect(out(/--list-services/).every((s) => s.includes("analytics.v1.AnalyticsService") && s.includes("analytics.v1.MetricsService"))).toBe(true);
    expect(out(/Health\/Check/)).toEqual(out(/Health\/Check/).map(() => expect.stringContaining("SERVING")));
    const [logged] = out(/\/LogError\b/).map((s) => JSON.parse(s) as { id: string });
    expect(await t.rows(`select error_message from error_logs where id = ?`, [logged!.id])).toEqual([{ error_message: "device did not answer" }]);
    for (const s of out(/\/ResolveError\b/)) expect(JSON.parse(s)).toMatchObject({ errorId: logged!.id, resolved: true });
    const ingests = all.filter((r) => /\/IngestDeviceMetrics\b/.test(r.command));
    for (const run of ingests.filter((r) => !r.command.includes('"columns"'))) expect(JSON.parse(run.stdout)).toMatchObject({ counts: { received: 1 } });
    // The columnar example: its answer as its page comments it, and the rows it stored.
    const columnar = ingests.filter((r) => r.command.includes('"columns"'));
    expect(columnar).toHaveLength(1);
    expect(JSON.parse(columnar[0]!.stdout)).toEqual({ counts: { received: 3, stored: 2, filtered: 1 } });
    expect(await t.rows(`select metrics, reason from device_metrics where device_id = 'device-456' order by occurred_at`)).toEqual([
      { metrics: { cpu: 42.5, error_rate: 0.01 }, reason: "first_contact" },
      { metrics: { cpu: 97, error_rate: 0.01 }, reason: "significant_change" },
    ]);
    for (const s of out(/\/GetDeviceMetrics\b/)) expect((JSON.parse(s) as { samples: unknown[] }).samples.length).toBeGreaterThan(0);
  });
});
