/**
 * The layout's rules (ARCHITECTURE.md, "Which way the arrows go"), checked from the import graph of
 * `src/` and `main.ts`: no import circle, each layer imports only the layers below it, and no file
 * or function grows past the size a newcomer can read at once.
 */

import assert from "node:assert/strict";
import {
  FILE_LINES_MAX,
  FUNCTION_LINES_MAX,
  functionSpans,
  importCycles,
  type ImportGraph,
  readImportGraph,
} from "./helpers/import_graph.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** Which top-level folders of `src/` each folder may import (its own always). */
const ALLOWED_LAYERS: Record<string, readonly string[]> = {
  core: [],
  model: ["core"],
  wal: ["core", "model"],
  slots: ["core", "model"],
  state: ["wal", "core", "model"],
  replication: ["wal", "slots", "state", "core", "model"],
  client: ["wal", "core", "model"],
  replica: ["wal", "state", "client", "core", "model"],
  cluster: ["core", "model"],
  metrics: ["replication", "replica", "slots", "state", "wal", "core", "model"],
  http: ["replication", "replica", "metrics", "slots", "state", "wal", "client", "core", "model"],
  app: [
    "http",
    "replication",
    "replica",
    "metrics",
    "slots",
    "state",
    "wal",
    "client",
    "cluster",
    "core",
    "model",
  ],
};

let graphPromise: Promise<ImportGraph> | undefined;
function graph(): Promise<ImportGraph> {
  graphPromise ??= readImportGraph(ROOT, ["main.ts", "mod.ts", "src"]);
  return graphPromise;
}

/** `src/<layer>/...` → layer; `main.ts` and `mod.ts` → themselves. */
function layerOf(path: string): string {
  const parts = path.split("/");
  return parts[0] === "src" ? parts[1]! : path;
}

Deno.test("the import graph of src/, main.ts and mod.ts has no circle", async () => {
  const cycles = importCycles(await graph());
  assert.deepEqual(cycles, [], `import circles:\n${cycles.map((c) => c.join(" -> ")).join("\n")}`);
});

Deno.test("each layer imports only the layers ARCHITECTURE.md allows", async () => {
  const wrong: string[] = [];
  for (const [from, targets] of (await graph()).edges) {
    const layer = layerOf(from);
    const allowed = ALLOWED_LAYERS[layer];
    if (allowed === undefined) continue;
    for (const target of targets) {
      const targetLayer = layerOf(target);
      if (targetLayer !== layer && !allowed.includes(targetLayer)) {
        wrong.push(`${from} imports ${target}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("every file of src/ sits in a layer folder", async () => {
  const loose = [...(await graph()).edges.keys()].filter((path) =>
    path.startsWith("src/") && ALLOWED_LAYERS[layerOf(path)] === undefined
  );
  assert.deepEqual(loose, []);
});

Deno.test("routes import http/router.ts, never the app that mounts them", async () => {
  const wrong: string[] = [];
  for (const [from, targets] of (await graph()).edges) {
    if (!from.startsWith("src/http/routes/")) continue;
    for (const target of targets) {
      if (target.endsWith("_app.ts")) wrong.push(`${from} imports ${target}`);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("nothing imports app/ but main.ts", async () => {
  const wrong: string[] = [];
  for (const [from, targets] of (await graph()).edges) {
    if (from === "main.ts" || layerOf(from) === "app") continue;
    for (const target of targets) if (layerOf(target) === "app") wrong.push(`${from} -> ${target}`);
  }
  assert.deepEqual(wrong, []);
});

Deno.test("no module of src/ awaits at import time", async () => {
  const wrong: string[] = [];
  for (const [path, text] of (await graph()).texts) {
    text.split("\n").forEach((line, index) => {
      if (/^(export\s+)?(const|let|var)\s+[^=]+=\s*await\b|^await\b/.test(line)) {
        wrong.push(`${path}:${index + 1}`);
      }
    });
  }
  assert.deepEqual(wrong, []);
});

Deno.test(`no file of src/ is over ${FILE_LINES_MAX} lines`, async () => {
  const long: string[] = [];
  for (const [path, text] of (await graph()).texts) {
    const lines = text.split("\n").length - 1;
    if (path.startsWith("src/") && lines > FILE_LINES_MAX) long.push(`${path} (${lines})`);
  }
  assert.deepEqual(long, []);
});

Deno.test(`no function of src/ or main.ts is over ${FUNCTION_LINES_MAX} lines`, async () => {
  const long: string[] = [];
  for (const [path, text] of (await graph()).texts) {
    for (const span of functionSpans(text)) {
      if (span.lines > FUNCTION_LINES_MAX) {
        long.push(`${path}:${span.startLine} ${span.name} (${span.lines})`);
      }
    }
  }
  assert.deepEqual(long, []);
});

Deno.test("functionSpans() measures functions, methods and inline handlers", () => {
  const text = [
    "export function a(x: number): number {",
    "  return x;",
    "}",
    "class B {",
    "  async run(): Promise<void> {",
    '    app.get("/", async (c) => {',
    "      return c.json({});",
    "    });",
    "  }",
    "}",
  ].join("\n");
  assert.deepEqual(
    functionSpans(text).map((s) => [s.name, s.startLine, s.lines]),
    [["a", 1, 3], ["run", 5, 5], ["(c) =>", 6, 3]],
  );
});

Deno.test("importCycles() finds a circle and readImportGraph() resolves relative imports", () => {
  const edges = new Map([
    ["a.ts", new Set(["b.ts"])],
    ["b.ts", new Set(["c.ts"])],
    ["c.ts", new Set(["a.ts"])],
    ["d.ts", new Set(["a.ts"])],
  ]);
  assert.deepEqual(importCycles({ edges, texts: new Map() }), [["a.ts", "b.ts", "c.ts", "a.ts"]]);
});
