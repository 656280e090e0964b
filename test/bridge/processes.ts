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

export interface PrivateMosquitto {
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

const freePort = async (): Promise<number> => {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
};

const accepts = async (port: number): Promise<boolean> => {
  const { connect } = await import("node:net");
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
};

/** A Mosquitto of the test's own, with persistence, that the test may stop and start again. */
export const privateMosquitto = async (dir: string): Promise<PrivateMosquitto> => {
  const { chmodSync, writeFileSync } = await import("node:fs");
  // Started as root, mosquitto drops to its own user: it must be able to write its persistence file here.
  chmodSync(dir, 0o777);
  const { join } = await import("node:path");
  const port = await freePort();
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "persistence true",
      `persistence_location ${dir}/`,
      "log_dest none",
    ].join("\n"),
  );
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn("mosquitto", ["-c", conf], { stdio: "ignore" });
    const deadline = Date.now() + 10_000;
    while (!(await accepts(port))) {
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill("SIGTERM");
    await exited;
  };
  await start();
  return { url: `mqtt://127.0.0.1:${port}`, port, start, stop };
};
