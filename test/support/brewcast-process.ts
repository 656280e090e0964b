/**
 * `brewcast start` (or another role) as a child process, as an operator runs
 * it: for what a test must see from outside (file descriptors, SIGKILL and a
 * restart, a flood). Waits for the `listening` log line and reads its ports.
 * And `runCli`, a command that runs to its end (check-config, migrate, a
 * start that fails).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { waitFor } from "./wait.ts";

const BIN = fileURLToPath(new URL("../../bin/brewcast.js", import.meta.url));

export interface BrewcastProcess {
  child: ChildProcess;
  ports: { http: number; mqtt: number };
  apiUrl: string;
  mqttUrl: string;
  exited: Promise<number | null>;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Signals it (SIGTERM by default) and resolves with its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export const spawnBrewcast = async (
  env: Record<string, string>,
  role: "start" | "broker" = "start",
): Promise<BrewcastProcess> => {
  const child = spawn(process.execPath, [BIN, role], {
    env: { PATH: process.env.PATH ?? "", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const line = await waitFor(
    "brewcast to log its ports",
    () => {
      if (gone) throw new Error(`brewcast exited before listening:\n${text}`);
      return text.split("\n").find((l) => l.includes('"msg":"listening"'));
    },
    60_000,
  );
  const { http, mqtt } = JSON.parse(line) as { http: number; mqtt: number };
  return {
    child,
    ports: { http, mqtt },
    apiUrl: `http://127.0.0.1:${http}`,
    mqttUrl: `mqtt://127.0.0.1:${mqtt}`,
    exited,
    output: () => text,
    async stop(signal = "SIGTERM") {
      if (!gone) child.kill(signal);
      return exited;
    },
  };
};

/** Runs `node bin/brewcast.js <args>` with exactly the given environment (plus PATH). */
export const runCli = (
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/brewcast.js", ...args], {
      cwd: new URL("../..", import.meta.url),
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
