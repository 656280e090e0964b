/**
 * The SDK ships on its own: every import in src/client/ is a relative path
 * that stays inside src/client/ or src/domain/, a node: builtin, or the
 * `mqtt` package. No store, api, broker or bridge code; no other package.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { sourceFiles, specifiers } from "../support/imports.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const CLIENT = path.join(ROOT, "src/client");
const ALLOWED_DIRS = [CLIENT, path.join(ROOT, "src/domain")];
/** Packages the SDK may import; zod comes in through src/domain only. */
const ALLOWED_PACKAGES = new Set(["mqtt"]);

/** The files src/client/ reaches through relative imports (domain included). */
const reachable = (): Map<string, string[]> => {
  const seen = new Map<string, string[]>();
  const queue = sourceFiles(CLIENT);
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    const specs = specifiers(readFileSync(file, "utf8"));
    seen.set(file, specs);
    for (const spec of specs) if (spec.startsWith(".")) queue.push(path.resolve(path.dirname(file), spec));
  }
  return seen;
};

describe("src/client imports", () => {
  it("finds the SDK's files and their imports (the scanner works)", () => {
    const files = [...reachable().keys()].map((f) => path.relative(ROOT, f));
    expect(files).toContain("src/client/consumer.ts");
    expect(files).toContain("src/domain/events.ts");
    expect(specifiers('import a from "x";\nimport type { B } from "./y.ts";\nexport * from "z";')).toEqual([
      "x",
      "./y.ts",
      "z",
    ]);
  });

  it("reach only src/client, src/domain, node builtins and the mqtt package", () => {
    const offending: string[] = [];
    for (const [file, specs] of reachable()) {
      const inClient = file.startsWith(CLIENT + path.sep);
      for (const spec of specs) {
        if (spec.startsWith(".")) {
          const target = path.resolve(path.dirname(file), spec);
          if (!ALLOWED_DIRS.some((dir) => target.startsWith(dir + path.sep)))
            offending.push(`${path.relative(ROOT, file)} → ${spec}`);
        } else if (spec.startsWith("node:")) {
        } else if (inClient && !ALLOWED_PACKAGES.has(spec.split("/")[0]!)) {
          offending.push(`${path.relative(ROOT, file)} → ${spec}`);
        } else if (!inClient && spec !== "zod") {
          // Domain code is pure: zod is its only package (its own test guards the rest).
          offending.push(`${path.relative(ROOT, file)} → ${spec}`);
        }
      }
    }
    expect(offending).toEqual([]);
  });
});
