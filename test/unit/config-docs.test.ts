import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CONFIG_DOCS_PATH, configFieldDocs, renderConfigDocs } from "../../scripts/config-docs.js";
import { CONFIG_SETTINGS } from "../../src/config.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");

describe("docs/CONFIGURATION.md", () => {
  it("is what scripts/config-docs.ts generates from src/config.ts (else: npm run docs:config)", () => {
    const committed = readFileSync(join(root, CONFIG_DOCS_PATH), "utf8");
    expect(committed, `${CONFIG_DOCS_PATH} is stale: run npm run docs:config and commit it`).toBe(renderConfigDocs());
  });

  it("has one row per variable the service reads, with its default", () => {
    const rows = renderConfigDocs()
      .split("\n")
      .filter((line) => /^\| `[A-Z_]+` \|/.test(line));
    expect(rows.map((r) => /^\| `([A-Z_]+)`/.exec(r)![1])).toEqual(Object.values(CONFIG_SETTINGS).map((s) => s.name));
    expect(rows.find((r) => r.startsWith("| `PORT` |"))).toMatch(/^\| `PORT` \| `8080` \| TCP port/);
    expect(rows.find((r) => r.startsWith("| `ANALYTICS_WRITER_MAX_BUFFERED_MB` |"))).toContain("| `64` |");
    expect(rows.find((r) => r.startsWith("| `ANALYTICS_RATE_LIMITS` |"))).toContain("`admin=20/s:50,service=1000/s:2000,user=10/s:50,device=10/s:50`");
  });

  it("refuses a setting without TSDoc and a TSDoc default that is not the config's", () => {
    const source = readFileSync(join(root, "src/config.ts"), "utf8");
    expect(configFieldDocs(source).get("port")).toContain("default 8080");
    expect(() => renderConfigDocs(source.replace("(`PORT`, default 8080;", "(`PORT`, default 8081;"))).toThrow(/port says default 8081, the config uses 8080/);
    expect(() => renderConfigDocs(source.replace(/\/\*\* TCP port for gRPC[^\n]*\n/, ""))).toThrow(/Config\.port \(PORT\) has no TSDoc/);
  });
});
