/**
 * `--baseline DIR`: another checkout of brewcast (a git worktree of an older commit, with its
 * own `npm ci`) served beside the one under test, on the same database, so that a bench
 * measures old and new code in the same run, interleaved. Its brewcast is started by its own
 * bench/harness.ts (`--serve brewcast`), so it runs exactly that commit's src/.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { forkBenchChild, onCleanup } from "./harness.ts";

/** Takes `--baseline DIR` (or `--baseline=DIR`) off `argv`: the directory, and the other flags. */
export const takeBaselineFlag = (
  argv = process.argv.slice(2),
): { dir: string | undefined; rest: string[] } => {
  const rest: string[] = [];
  let dir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--baseline") dir = argv[++i];
    else if (arg.startsWith("--baseline=")) dir = arg.slice("--baseline=".length);
    else rest.push(arg);
  }
  return { dir: dir === undefined ? undefined : path.resolve(dir), rest };
};

/**
 * The baseline's whole brewcast process, with `env` (DATABASE_URL, …); stopped at cleanup. A
 * checkout from after the bench library was split (issue 17) serves it from
 * bench/children/serve-brewcast.ts; an older one from bench/harness.ts `--serve brewcast`.
 */
export const spawnBaseline = async (dir: string, env: Record<string, string>) => {
  const child = path.join(dir, "bench/children/serve-brewcast.ts");
  const [program, args] = existsSync(child)
    ? [child, []]
    : [path.join(dir, "bench/harness.ts"), ["--serve", "brewcast"]];
  const {
    child: process,
    ready,
    stop,
  } = await forkBenchChild(program, args, {
    label: `baseline brewcast (${dir})`,
    env: { BREWCAST_HTTP_PORT: "0", BREWCAST_MQTT_PORT: "0", ...env },
    killAfterMs: 10_000,
  });
  onCleanup(stop);
  const { port } = ready as { port: number };
  return { url: `http://127.0.0.1:${port}`, pid: process.pid!, stop };
};
