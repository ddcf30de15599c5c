/**
 * The SDK as a package: built with its `build` script's tsconfig into a throwaway
 * `node_modules/@fleet/analytics-sdk` outside the repository, then used the way outside consumers
 * use it: plain Node (no TypeScript loader) imports every entry point, a TypeScript consumer
 * type-checks against the emitted declarations, and browser bundles (esbuild,
 * `platform: "browser"`) of `.` and `./web` contain no Node.js module, from the built package and
 * from the sources (the `source` export condition used inside this repository). The TypeScript
 * examples of the README's SDK section and of docs/SDK.md type-check against the package.
 */
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build, type Metafile } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const sdk = join(root, "sdk");
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sdk-package-"));
  const pkg = join(dir, "node_modules/@fleet/analytics-sdk");
  await mkdir(pkg, { recursive: true });
  await run(join(root, "node_modules/.bin/tsc"), ["-p", join(sdk, "tsconfig.build.json"), "--outDir", join(pkg, "dist")]);
  await cp(join(sdk, "package.json"), join(pkg, "package.json"));
  await cp(join(sdk, "src"), join(pkg, "src"), { recursive: true });
  for (const scope of ["@connectrpc", "@bufbuild", "@types"]) await symlink(join(root, "node_modules", scope), join(dir, "node_modules", scope), "dir");
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Node built-ins and Node-only packages a browser bundle must not contain. */
function nodeOnlyInputs(metafile: Metafile): string[] {
  const inputs = Object.keys(metafile.inputs);
  const imports = Object.values(metafile.inputs).flatMap((i) => i.imports.map((x) => x.path));
  return [...inputs, ...imports].filter((p) => p.startsWith("node:") || p.includes("connect-node") || /^(http2?|https|net|tls|zlib|fs|stream)$/.test(p));
}

describe("@fleet/analytics-sdk as a package", () => {
  it("imports every entry point from the built JavaScript in plain Node", async () => {
    const script = `
      import * as sdk from "@fleet/analytics-sdk";
      import { createNodeTransport, createEventLogger } from "@fleet/analytics-sdk/node";
      import { createWebTransport, createBrowserTracker } from "@fleet/analytics-sdk/web";
      import { createMetricsStreamer } from "@fleet/analytics-sdk/device";
      import { ErrorCategory } from "@fleet/analytics-sdk/gen/analytics/v1/common_pb.js";
      const analytics = sdk.createAnalyticsClient(createNodeTransport({ baseUrl: "http://127.0.0.1:1" }));
      const logger = createEventLogger(analytics);
      console.log(JSON.stringify({
        clients: [typeof sdk.createAnalyticsClient, typeof sdk.createMetricsClient, typeof analytics.logEvents],
        entries: [typeof createWebTransport, typeof createBrowserTracker, typeof createMetricsStreamer],
        frontend: ErrorCategory.FRONTEND === sdk.ErrorCategory.FRONTEND,
        service: sdk.AnalyticsService.typeName,
        queued: logger.stats().queued,
      }));`;
    await writeFile(join(dir, "consumer.mjs"), script);
    const { stdout } = await run(process.execPath, ["consumer.mjs"], { cwd: dir });
    expect(JSON.parse(stdout)).toEqual({
      clients: ["function", "function", "function"],
      entries: ["function", "function", "function"],
      frontend: true,
      service: "analytics.v1.AnalyticsService",
      queued: 0,
    });
  });

  it("type-checks a TypeScript consumer against the emitted declarations", async () => {
    await writeFile(
      join(dir, "consumer.ts"),
      `import { createAnalyticsClient, ErrorCategory, type LogErrorResponse } from "@fleet/analytics-sdk";
       import { createNodeTransport } from "@fleet/analytics-sdk/node";
       const analytics = createAnalyticsClient(createNodeTransport({ baseUrl: "http://localhost:8080", token: "t" }));
       export const res: Promise<LogErrorResponse> = analytics.logError({ category: ErrorCategory.API, errorMessage: "x", occurredAt: new Date() });
       // @ts-expect-error: errorMessage must be a string
       void analytics.logError({ errorMessage: 42 });
      `,
    );
    await writeFile(
      join(dir, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, skipLibCheck: true, lib: ["ES2023", "DOM"], types: ["node"] }, files: ["consumer.ts"] }),
    );
    await writeFile(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    await run(join(root, "node_modules/.bin/tsc"), ["-p", join(dir, "tsconfig.json")], { cwd: dir });
  }, 60_000);

  it("type-checks the TypeScript examples of the README and docs/SDK.md against the package", async () => {
    const readme = await readFile(join(root, "README.md"), "utf8");
    const readmeSection = readme.slice(readme.indexOf("## The SDK"), readme.indexOf("\n## ", readme.indexOf("## The SDK") + 1));
    const sdkPage = await readFile(join(root, "docs/SDK.md"), "utf8");
    const blocksOf = (markdown: string) => [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    // docs/SDK.md holds the examples that were the README's (one per entry point at least); the
    // README keeps a short one per platform.
    expect(blocksOf(sdkPage).length).toBeGreaterThanOrEqual(3);
    expect(blocksOf(readmeSection).length).toBeGreaterThanOrEqual(3);
    const examples = [...blocksOf(readmeSection), ...blocksOf(sdkPage)];
    expect(examples.length).toBeGreaterThanOrEqual(3);
    const files = await Promise.all(
      examples.map(async (code, i) => {
        const file = `readme-example-${i}.ts`;
        await writeFile(join(dir, file), `${code}\nexport {};\n`);
        return file;
      }),
    );
    await writeFile(
      join(dir, "tsconfig.readme.json"),
      JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, skipLibCheck: true, esModuleInterop: true, lib: ["ES2023", "DOM"], types: ["node"] }, files }),
    );
    await writeFile(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    await run(join(root, "node_modules/.bin/tsc"), ["-p", join(dir, "tsconfig.readme.json")], { cwd: dir }).catch((err: { stdout?: string }) => {
      throw new Error(`README / docs/SDK.md examples do not type-check:\n${err.stdout ?? String(err)}`);
    });
  }, 60_000);

  it.each([
    ["built package", () => dir, [] as string[]],
    ["sources (source condition)", () => root, ["source"]],
  ])("bundles . and ./web for browsers without Node modules (%s)", async (_name, cwd, conditions) => {
    const result = await build({
      stdin: {
        contents: `import { createAnalyticsClient, ErrorCategory } from "@fleet/analytics-sdk";
                   import { createWebTransport, createBrowserTracker } from "@fleet/analytics-sdk/web";
                   createBrowserTracker({ baseUrl: "https://a.example", client: createAnalyticsClient(createWebTransport({ baseUrl: "https://a.example" })) });
                   console.log(ErrorCategory.FRONTEND);`,
        resolveDir: cwd(),
        loader: "ts",
      },
      bundle: true,
      platform: "browser",
      format: "esm",
      minify: true,
      write: false,
      metafile: true,
      conditions,
      logLevel: "silent",
    });
    expect(nodeOnlyInputs(result.metafile)).toEqual([]);
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.some((p) => p.includes(conditions.length > 0 ? "sdk/src/web/browser-tracker.ts" : "dist/web/browser-tracker.js"))).toBe(true);
    expect(inputs.some((p) => p.includes("connect-web"))).toBe(true);
    // Informative: the minified size of a page using the tracker.
    const bytes = result.outputFiles[0]!.contents.length;
    expect(bytes).toBeLessThan(400_000);
  });

  it("cannot bundle ./node or ./device for browsers (so the check above means something)", async () => {
    for (const entry of ["@fleet/analytics-sdk/node", "@fleet/analytics-sdk/device"]) {
      await expect(
        build({ stdin: { contents: `import * as m from "${entry}"; console.log(m);`, resolveDir: dir }, bundle: true, platform: "browser", write: false, logLevel: "silent" }),
      ).rejects.toThrow(/node:|http2|Could not resolve/);
    }
  });
});
