/**
 * The layers of src/ are true: every import between our own files follows the
 * table below (README, "Architecture"), and the folders import each other in
 * no cycle. Parses the sources only: no services, well under a second.
 *
 * A layer is a folder under src/ or one of the top-level files. The table says
 * which other layers a layer's files may import; imports inside a layer, of
 * node builtins and of packages are not this test's business (the SDK's
 * packages are: test/unit/client-imports.test.ts).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { sourceFiles, specifiers } from "../support/imports.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const SRC = path.join(ROOT, "src");

/** Top-level files, each its own layer. */
const FILE_LAYERS: Record<string, string> = {
  "main.ts": "app",
  "cli.ts": "cli",
  "cli-usage.ts": "cli",
  "log.ts": "log",
  "listen-error.ts": "log",
};

/**
 * Who may import whom. Dependencies point inward: domain imports nothing of
 * ours; the adapters (store, api, broker, sessions, bridge) import domain and
 * each other only where a capability is built on another: broker → sessions
 * (the broker hosts the MQTT sessions), bridge → delivery (MQTT is a channel
 * of the delivery core), webhooks → delivery (webhook delivery reuses the
 * core's leadership, deadlines and token bucket), api → stream and webhooks (the routes serve them); app (the composition root, src/main.ts and src/app/) wires them;
 * nothing but cli imports app, and nothing imports cli.
 */
const ALLOWED: Record<string, readonly string[]> = {
  domain: [],
  log: [],
  config: ["log"],
  store: ["domain", "log"],
  sessions: ["domain", "log"],
  broker: ["domain", "sessions", "log"],
  delivery: ["domain", "log"],
  bridge: ["domain", "delivery", "log"],
  stream: ["domain"],
  webhooks: ["domain", "delivery", "log"],
  api: ["domain", "stream", "webhooks", "log"],
  ops: ["domain", "config", "log"],
  client: ["domain"],
  pages: [],
  app: [
    "domain",
    "log",
    "config",
    "store",
    "sessions",
    "broker",
    "delivery",
    "bridge",
    "stream",
    "webhooks",
    "api",
    "ops",
    "pages",
  ],
  cli: ["domain", "log", "config", "client", "app"],
};

/** Single edges allowed against the table, each with the reason it still exists. */
const EXCEPTIONS: readonly string[] = [];

const layerOf = (file: string): string | undefined => {
  const rel = path.relative(SRC, file);
  if (rel.startsWith("..")) return undefined;
  const [first, ...rest] = rel.split(path.sep);
  if (rest.length === 0) return FILE_LAYERS[first!];
  return first === "app" ? "app" : first;
};

const rel = (file: string) => path.relative(ROOT, file).split(path.sep).join("/");

/** Every import of one of our files by another, as `from → to`. */
const edges = (): { from: string; to: string }[] =>
  sourceFiles(SRC).flatMap((file) =>
    specifiers(readFileSync(file, "utf8"))
      .filter((spec) => spec.startsWith("."))
      .map((spec) => ({ from: file, to: path.resolve(path.dirname(file), spec) })),
  );

describe("src/ layers", () => {
  it("every file of src/ belongs to a layer of the table (a new folder or top-level file needs a row)", () => {
    const unplaced = sourceFiles(SRC)
      .filter((file) => {
        const layer = layerOf(file);
        return layer === undefined || !(layer in ALLOWED);
      })
      .map(rel);
    expect(unplaced).toEqual([]);
  });

  it("the scanner sees the imports it must judge", () => {
    expect(specifiers('import a from "x";\nimport type { B } from "./y.ts";\nexport * from "z";')).toEqual([
      "x",
      "./y.ts",
      "z",
    ]);
    const found = edges().map(({ from, to }) => `${rel(from)} → ${rel(to)}`);
    expect(found).toContain("src/store/orders.ts → src/domain/orders.ts");
    expect(found).toContain("src/app/http.ts → src/api/app.ts");
  });

  it("every import between layers follows the table", () => {
    const offending: string[] = [];
    const excused = new Set<string>();
    for (const { from, to } of edges()) {
      const a = layerOf(from);
      const b = layerOf(to);
      if (a === undefined || b === undefined || a === b) continue;
      const edge = `${rel(from)} → ${rel(to)}`;
      if (EXCEPTIONS.includes(edge)) {
        excused.add(edge);
        continue;
      }
      if (!ALLOWED[a]?.includes(b))
        offending.push(`${edge} (${a} may import ${ALLOWED[a]?.join(", ") || "nothing of ours"})`);
    }
    expect(offending).toEqual([]);
    // An exception whose import is gone must go too (delete its line from EXCEPTIONS).
    expect(EXCEPTIONS.filter((edge) => !excused.has(edge))).toEqual([]);
  });

  it("the layers import each other in no cycle", () => {
    const graph = new Map<string, Set<string>>();
    for (const { from, to } of edges()) {
      const a = layerOf(from);
      const b = layerOf(to);
      if (a === undefined || b === undefined || a === b) continue;
      if (EXCEPTIONS.includes(`${rel(from)} → ${rel(to)}`)) continue;
      if (!graph.has(a)) graph.set(a, new Set());
      graph.get(a)!.add(b);
    }
    const cycles: string[] = [];
    const visit = (node: string, trail: string[]) => {
      if (trail.includes(node)) {
        cycles.push([...trail.slice(trail.indexOf(node)), node].join(" → "));
        return;
      }
      for (const next of graph.get(node) ?? []) visit(next, [...trail, node]);
    };
    for (const node of graph.keys()) visit(node, []);
    expect(cycles).toEqual([]);
  });

  it("the README's architecture table is this table", () => {
    const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
    const block = readme.split("<!-- layers -->")[1]?.split("<!-- /layers -->")[0] ?? "";
    const rows = Object.fromEntries(
      block
        .split("\n")
        .filter((line) => /^\| `/.test(line))
        .map((line) => {
          const cells = line.split("|").map((cell) => cell.trim());
          const names = (cell: string) => [...cell.matchAll(/`([a-z]+)`/g)].map((m) => m[1]!);
          return [names(cells[1]!)[0]!, names(cells[3]!)];
        }),
    );
    expect(rows).toEqual(Object.fromEntries(Object.entries(ALLOWED).map(([k, v]) => [k, [...v]])));
  });

  it("the table itself has no cycle", () => {
    const cycles: string[] = [];
    const visit = (node: string, trail: string[]) => {
      if (trail.includes(node)) {
        cycles.push([...trail, node].join(" → "));
        return;
      }
      for (const next of ALLOWED[node] ?? []) visit(next, [...trail, node]);
    };
    for (const node of Object.keys(ALLOWED)) visit(node, []);
    expect(cycles).toEqual([]);
  });
});
