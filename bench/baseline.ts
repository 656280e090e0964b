/**
 * `--baseline DIR`: another checkout of brewcast (a git worktree of an older commit, with its
 * own `npm ci`) served beside the one under test, on the same database, so that a bench
 * measures old and new code in the same run, interleaved. Its brewcast is started by its own
 * bench/harness.ts (`--serve brewcast`), so it runs exactly that commit's src/.
 */
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

/** The baseline's whole brewcast process, with `env` (DATABASE_URL, …); stopped at cleanup. */
export const spawnBaseline = async (dir: string, env: Record<string, string>) => {
  const { child, ready, stop } = await forkBenchChild(
    path.join(dir, "bench/harness.ts"),
    ["--serve", "brewcast"],
    {
      label: `baseline brewcast (${dir})`,
      env: { BREWCAST_HTTP_PORT: "0", BREWCAST_MQTT_PORT: "0", ...env },
      killAfterMs: 10_000,
    },
  );
  onCleanup(stop);
  const { port } = ready as { port: number };
  return { url: `http://127.0.0.1:${port}`, pid: child.pid!, stop };
};
