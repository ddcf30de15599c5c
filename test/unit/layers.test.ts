/**
 * The source's layering, read from its import statements: no two folders of `src/` import each
 * other, directly or around a loop (a file at the top of `src/`, such as `config.ts`, counts as a
 * folder of its own), and `src/` reaches the SDK only through the entry points its package exports
 * (`sdk/package.json`), never through one of its private files.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const src = join(root, "src");
const sdkSrc = join(root, "sdk", "src");

/** Every `.ts` file under `dir`. */
function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** Each relative import of `file` (static, re-export, type-only or dynamic) as an absolute `.ts` path. */
function importsOf(file: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
  return importedFiles
    .map((f) => f.fileName)
    .filter((name) => name.startsWith("."))
    .map((name) => resolve(dirname(file), name.replace(/\.js$/, ".ts")));
}

/** The layer a file of `src/` belongs to: its top folder, or the file itself at the top. */
function layerOf(file: string): string {
  const [first, ...rest] = relative(src, file).split(sep);
  return rest.length === 0 ? first! : `${first}/`;
}

/** Layer-to-layer imports, each with one file-level example. */
function layerGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  for (const file of tsFiles(src)) {
    const from = layerOf(file);
    for (const target of importsOf(file)) {
      if (!target.startsWith(src + sep)) continue;
      const to = layerOf(target);
      if (to === from) continue;
      if (!graph.has(from)) graph.set(from, new Map());
      const edges = graph.get(from)!;
      if (!edges.has(to)) edges.set(to, `${relative(root, file)} -> ${relative(root, target)}`);
    }
  }
  return graph;
}

/** The strongly connected components of `graph` with more than one layer (Tarjan). */
function cycles(graph: Map<string, Map<string, string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** The files of `sdk/src/` its package exports (`source` of each entry, `*` patterns expanded). */
function sdkPublicFiles(): Set<string> {
  const pkg = JSON.parse(readFileSync(join(root, "sdk", "package.json"), "utf8")) as { exports: Record<string, { source: string }> };
  const all = tsFiles(sdkSrc);
  const allowed = new Set<string>();
  for (const entry of Object.values(pkg.exports)) {
    const pattern = resolve(root, "sdk", entry.source);
    if (!pattern.includes("*")) {
      allowed.add(pattern);
      continue;
    }
    const [before, after] = pattern.split("*") as [string, string];
    for (const file of all) if (file.startsWith(before) && file.endsWith(after)) allowed.add(file);
  }
  return allowed;
}

describe("layers", () => {
  it("no folder of src/ imports one that imports it back, directly or around a loop", () => {
    const graph = layerGraph();
    // The graph is read: a folder is there with what it imports.
    expect(graph.get("queries/")?.has("db/")).toBe(true);
    const loops = cycles(graph).map((component) => {
      const edges = component.flatMap((from) =>
        component.filter((to) => graph.get(from)?.has(to)).map((to) => `  ${from} -> ${to}  (${graph.get(from)!.get(to)})`),
      );
      return `${component.join(", ")}:\n${edges.join("\n")}`;
    });
    expect(loops, loops.join("\n")).toEqual([]);
  });

  it("src/ imports the SDK only through the entry points its package exports", () => {
    const allowed = sdkPublicFiles();
    expect(allowed.has(join(sdkSrc, "index.ts"))).toBe(true);
    const reaches = tsFiles(src).flatMap((file) =>
      importsOf(file)
        .filter((target) => target.startsWith(sdkSrc + sep) && !allowed.has(target))
        .map((target) => `${relative(root, file)} -> ${relative(root, target)}`),
    );
    expect(reaches).toEqual([]);
  });
});
