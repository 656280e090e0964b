/**
 * Prints the hottest functions of a V8 `.cpuprofile` (self time, and self
 * time grouped by package or source file), for reading the profiles that
 * `--profile DIR` writes.
 *
 *   npx tsx bench/profile-top.ts DIR/CPU.*.cpuprofile [--top 30]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  options: { top: { type: "string", default: "30" } },
  allowPositionals: true,
});
const top = Number(values.top);
for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fns = new Map<string, number>();
  const groups = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const where = url.replace(/^file:\/\//, "").replace(/.*node_modules\//, "");
    const fn = `${functionName || "(anonymous)"} ${where}:${lineNumber + 1}`;
    fns.set(fn, (fns.get(fn) ?? 0) + us);
    const group = where.startsWith("/")
      ? where.replace(/.*\/(src|bench)\//, "$1/")
      : where.split("/")[0] || functionName;
    groups.set(group, (groups.get(group) ?? 0) + us);
  }
  const print = (title: string, map: Map<string, number>) => {
    process.stdout.write(`\n${title}\n`);
    for (const [name, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      process.stdout.write(
        `${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${name}\n`,
      );
    }
  };
  process.stdout.write(`${file}: ${(total / 1e6).toFixed(1)} s sampled\n`);
  // Inclusive time of our own functions (src/): each sample counts once for every distinct
  // src/ function on its stack.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { functionName, url, lineNumber } = byId.get(at)!.callFrame;
      if (!url.includes("/src/")) continue;
      const fn = `${functionName || "(anonymous)"} ${url.replace(/.*\/src\//, "src/")}:${lineNumber + 1}`;
      if (seen.has(fn)) continue;
      seen.add(fn);
      inclusive.set(fn, (inclusive.get(fn) ?? 0) + us);
    }
  }
  print("by package / file (self time)", groups);
  print("by function (self time)", fns);
  print("src/ functions (inclusive time)", inclusive);
}
