/**
 * `brewcast bridge` as a child process, for crash and takeover tests.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/brewcast.js", import.meta.url));

export interface BridgeProcess {
  child: ChildProcess;
  /** Roles logged so far, in order ("standby", "leader"). */
  roles: string[];
  exited: Promise<number | null>;
  output(): string;
}

export const spawnBridge = (databaseUrl: string, mqttUrl: string): BridgeProcess => {
  const child = spawn(process.execPath, [BIN, "bridge"], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: databaseUrl,
      BREWCAST_MQTT_URL: mqttUrl,
      BREWCAST_HTTP_PORT: "0",
      BREWCAST_HOST: "127.0.0.1",
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const roles: string[] = [];
  let text = "";
  let partial = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    text += chunk.toString();
    partial += chunk.toString();
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      try {
        const entry = JSON.parse(line) as { msg?: string; role?: string };
        if (entry.msg === "delivery role" && entry.role) roles.push(entry.role);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, roles, exited, output: () => text };
};

/** Resolves after a random delay in [min, max) ms: the "random moment" of a crash test. */
export const randomMoment = (min: number, max: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, min + Math.random() * (max - min)));
