/**
 * Runs the shell commands of README.md and docs/*.md top to bottom, as a new
 * user would: in a fresh copy of this clone (the files git tracks or would
 * track, nothing else: no node_modules, no data), in one bash per document
 * (set -euo pipefail), with a clean environment and only the ports changed.
 *
 * - Every ```sh block runs, in order, unless the line before it is a
 *   `<!-- not-run: reason -->` comment (Docker, a partner's own machine).
 * - Ports: 8080 and 1883 in the commands become free ports, and
 *   BREWCAST_HTTP_PORT / BREWCAST_MQTT_PORT say the same to `npm start`.
 * - A command whose comment says "Ctrl-C stops it" runs as in a terminal's
 *   foreground until the server logs "listening", then gets Ctrl-C (SIGINT
 *   to its process group) and must stop.
 * - `npm test` is not run: it is the suite that runs this script.
 *
 * `npm test` runs this through test/serial/doc-commands.test.ts, after the
 * main suite (it loads the machine). By hand: `npx tsx
 * scripts/run-doc-commands.ts [--keep]` (--keep leaves the copy).
 */
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

export interface ShellBlock {
  /** The document, relative to the root, and the line of the block's opening fence. */
  file: string;
  line: number;
  code: string;
  /** Why it is not run, when it is not. */
  notRun?: string;
}

/** The documents, in reading order: the README, then docs/ by name. */
export const docFiles = (root = ROOT): string[] => [
  "README.md",
  ...readdirSync(join(root, "docs"))
    .filter((name) => name.endsWith(".md"))
    .sort()
    .map((name) => `docs/${name}`),
];

/** Every ```sh block of a document, with the `not-run` reason written before it. */
export const shellBlocks = (file: string, text: string): ShellBlock[] => {
  const blocks: ShellBlock[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(sh|bash|shell)\s*$/.test(lines[i]!)) continue;
    const end = lines.indexOf("```", i + 1);
    if (end === -1) throw new Error(`${file}:${i + 1}: unclosed code block`);
    let before = i - 1;
    while (before >= 0 && lines[before]!.trim() === "") before--;
    const notRun = /^<!-- not-run: (.+) -->$/.exec(lines[before] ?? "")?.[1];
    blocks.push({
      file,
      line: i + 1,
      code: lines.slice(i + 1, end).join("\n"),
      ...(notRun ? { notRun } : {}),
    });
    i = end;
  }
  return blocks;
};

const freePort = async (): Promise<number> => {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
};

/** The block as run: documented ports swapped, `npm test` left out, foreground servers stopped by Ctrl-C. */
export const prepare = (code: string, ports: Record<number, number>): string =>
  code
    .split("\n")
    .map((line) => {
      let out = line;
      for (const [from, to] of Object.entries(ports))
        out = out.replace(new RegExp(`\\b${from}\\b`, "g"), String(to));
      if (/^npm test\b/.test(out)) return `: not run: npm test is the suite that runs these commands`;
      if (/#.*Ctrl-C stops it/.test(out)) return `__foreground ${out.replace(/\s*#.*$/, "")}`;
      return out;
    })
    .join("\n");

/** Bash run before the blocks: strict mode, and the helper for foreground servers. */
const PRELUDE = `set -euo pipefail
# Runs "$@" like a terminal's foreground job until it logs "listening", then presses Ctrl-C:
# SIGINT to its process group. It must exit (0, or 130 as npm reports a Ctrl-C).
__foreground() {
  local log status=0
  log=$(mktemp)
  set -m
  "$@" >"$log" 2>&1 &
  local pid=$!
  set +m
  until grep -q '"msg":"listening"' "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "__foreground: $* exited before listening"; return 1; fi
    sleep 0.2
  done
  kill -INT -- "-$pid"
  wait "$pid" || status=$?
  cat "$log"
  if [ "$status" -ne 0 ] && [ "$status" -ne 130 ]; then echo "__foreground: $* exited $status after Ctrl-C"; return 1; fi
}
`;

/** After the blocks: wait for what they left in the background (a server told to stop). */
const EPILOGUE = `
wait || true
echo "### all commands done"
`;

export interface DocRun {
  ports: { http: number; mqtt: number };
  ran: ShellBlock[];
  notRun: ShellBlock[];
  /** Per document: bash's exit status and its output (stdout and stderr, interleaved). */
  results: { file: string; status: number | null; output: string }[];
}

/** Copies the files a clone of this working tree would have. */
const freshCopy = (to: string): void => {
  const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: ROOT,
    encoding: "utf8",
  })
    .split("\0")
    .filter((file) => file && existsSync(join(ROOT, file)));
  for (const file of files) {
    mkdirSync(dirname(join(to, file)), { recursive: true });
    copyFileSync(join(ROOT, file), join(to, file));
  }
};

const runBash = (
  script: string,
  cwd: string,
  env: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number | null; output: string }> =>
  new Promise((resolve) => {
    // Its own process group: whatever the commands leave behind is killed with it.
    const child = spawn("bash", ["-c", script], {
      cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
    });
    child.stderr.on("data", (chunk) => {
      output += chunk;
    });
    const killGroup = () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      output += `\n### timed out after ${timeoutMs} ms\n`;
      killGroup();
    }, timeoutMs);
    child.once("exit", (status) => {
      clearTimeout(timer);
      killGroup();
      resolve({ status, output });
    });
  });

export const runDocCommands = async (
  options: { keep?: boolean; timeoutMs?: number; log?: (line: string) => void } = {},
): Promise<DocRun> => {
  const ports = { http: await freePort(), mqtt: await freePort() };
  const swap = { 8080: ports.http, 1883: ports.mqtt };
  const work = mkdtempSync(join(tmpdir(), "brewcast-doc-commands-"));
  const clone = join(work, "brewcast");
  const run: DocRun = { ports, ran: [], notRun: [], results: [] };
  try {
    freshCopy(clone);
    // A new user's environment: no DATABASE_URL, REDIS_URL or BREWCAST_* of the test run.
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? work,
      LANG: "C.UTF-8",
      TMPDIR: work,
      BREWCAST_HTTP_PORT: String(ports.http),
      BREWCAST_MQTT_PORT: String(ports.mqtt),
      // npm's chatter, not its behaviour: no audit or funding notes, the cache when it has a package.
      npm_config_audit: "false",
      npm_config_fund: "false",
      npm_config_update_notifier: "false",
      npm_config_prefer_offline: "true",
    };
    for (const file of docFiles(clone)) {
      const blocks = shellBlocks(file, readFileSync(join(clone, file), "utf8"));
      const runnable = blocks.filter((block) => block.notRun === undefined);
      run.notRun.push(...blocks.filter((block) => block.notRun !== undefined));
      if (runnable.length === 0) continue;
      run.ran.push(...runnable);
      const script = [
        PRELUDE,
        ...runnable.map((block) => `echo "### ${block.file}:${block.line}"\n${prepare(block.code, swap)}`),
        EPILOGUE,
      ].join("\n");
      options.log?.(`${file}: ${runnable.length} blocks (${blocks.length - runnable.length} not run)`);
      const result = await runBash(script, clone, env, options.timeoutMs ?? 600_000);
      run.results.push({ file, ...result });
      options.log?.(`${file}: exit ${result.status}`);
    }
    return run;
  } finally {
    if (options.keep) options.log?.(`kept ${clone}`);
    else rmSync(work, { recursive: true, force: true });
  }
};

const main = async (argv: string[]): Promise<number> => {
  const run = await runDocCommands({ keep: argv.includes("--keep"), log: (line) => console.error(line) });
  for (const block of run.notRun) console.error(`not run: ${block.file}:${block.line}: ${block.notRun}`);
  for (const result of run.results) {
    console.log(`\n===== ${result.file} (exit ${result.status})\n${result.output}`);
  }
  return run.results.every((result) => result.status === 0) ? 0 : 1;
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
