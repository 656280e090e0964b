/** A private Mosquitto for a bench's peer, stopped at cleanup. */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitForPort } from "./net.ts";
import { onCleanup } from "./run.ts";

/**
 * A private Mosquitto (anonymous, 127.0.0.1:port), stopped at cleanup. With `config`, those lines
 * go into a config file of its own (in a temporary directory) after `listener PORT 127.0.0.1`,
 * `allow_anonymous true`, `persistence false` and `log_dest none`, and Mosquitto runs with `-c`.
 */
export const startMosquitto = async (
  options: { config?: string[] } = {},
): Promise<{ port: number; pid: number; stop(): Promise<void> }> => {
  const port = await freePort();
  let args = ["-p", String(port)];
  let dir: string | undefined;
  if (options.config) {
    dir = mkdtempSync(join(tmpdir(), "bench-mosquitto-"));
    const file = join(dir, "mosquitto.conf");
    writeFileSync(
      file,
      [
        `listener ${port} 127.0.0.1`,
        "allow_anonymous true",
        "persistence false",
        "log_dest none",
        ...options.config,
        "",
      ].join("\n"),
    );
    args = ["-c", file];
  }
  const child = spawn("mosquitto", args, { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await waitForPort(port, "mosquitto");
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    child.kill("SIGTERM");
    await exited;
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  onCleanup(stop);
  return { port, pid: child.pid!, stop };
};
