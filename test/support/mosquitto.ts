/**
 * Mosquitto in tests: the broker (`mosquitto -c <conf>`, on a scratch
 * directory, or a private one with persistence the test stops and starts),
 * and its clients `mosquitto_sub`/`mosquitto_pub` (Debian's mosquitto-clients)
 * as child processes.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { accepts, freePort } from "./ports.ts";

export const hasCommand = (command: string, args: string[] = ["--help"]): boolean =>
  !spawnSync(command, args, { stdio: "ignore" }).error;

/**
 * A scratch directory Mosquitto can use: started as root it drops to the
 * `mosquitto` user before opening its persistence file, so the directory is
 * world-writable (it holds only test files).
 */
export const scratchDir = (): { dir: string; remove(): void } => {
  const dir = mkdtempSync(join(tmpdir(), "brewcast-mosquitto-"));
  chmodSync(dir, 0o777);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
};

export const writeConfig = (path: string, text: string): string => {
  writeFileSync(path, text, { mode: 0o644 });
  return path;
};

export interface RunningMosquitto {
  child: ChildProcess;
  /** Everything Mosquitto logged (stderr and stdout), for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/** Runs `mosquitto -c <conf>` and resolves once it accepts TCP on `port`; rejects if it exits first. */
export const runMosquitto = async (
  conf: string,
  port: number,
  timeoutMs = 10_000,
): Promise<RunningMosquitto> => {
  const child = spawn("mosquitto", ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  child.stdout!.on("data", (chunk) => {
    text += chunk;
  });
  child.stderr!.on("data", (chunk) => {
    text += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  /** SIGTERM, then SIGKILL if it has not exited within 3 s. */
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + timeoutMs;
  while (!(await accepts(port))) {
    if (child.exitCode !== null) throw new Error(`mosquitto -c ${conf} exited ${child.exitCode}: ${text}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`mosquitto -c ${conf} did not listen on ${port} within ${timeoutMs} ms: ${text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return { child, output: () => text, stop };
};

export interface SubMessage {
  retain: boolean;
  topic: string;
  payload: string;
}

export interface RunningSub {
  messages: SubMessage[];
  exited: Promise<number | null>;
  output(): string;
  stop(): Promise<void>;
}

/** `mosquitto_sub` (MQTT 3.1.1, QoS 1) printing "retain topic payload" per message. */
export const mosquittoSub = (port: number, topics: string[], extra: string[] = []): RunningSub => {
  const args = ["-V", "mqttv311", "-h", "127.0.0.1", "-p", String(port), "-q", "1", "-F", "%r %t %p"];
  for (const topic of topics) args.push("-t", topic);
  const child = spawn("mosquitto_sub", [...args, ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  const messages: SubMessage[] = [];
  let partial = "";
  let text = "";
  child.stdout.on("data", (chunk: Buffer) => {
    partial += chunk.toString();
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      const first = line.indexOf(" ");
      const second = line.indexOf(" ", first + 1);
      messages.push({
        retain: line.slice(0, first) === "1",
        topic: line.slice(first + 1, second),
        payload: line.slice(second + 1),
      });
    }
  });
  child.stderr.on("data", (chunk) => {
    text += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    messages,
    exited,
    output: () => text,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await exited;
    },
  };
};

export interface PrivateMosquitto {
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** A Mosquitto of the test's own, with persistence, that the test may stop and start again. */
export const privateMosquitto = async (dir: string): Promise<PrivateMosquitto> => {
  // Started as root, mosquitto drops to its own user: it must be able to write its persistence file here.
  chmodSync(dir, 0o777);
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

export interface MosquittoProcess {
  child: ChildProcess;
  stdout: string[];
  stderr: () => string;
  exit: Promise<number | null>;
  /** Resolves once stdout has `n` lines. */
  lines(n: number): Promise<string[]>;
}

/** `mosquitto_sub` or `mosquitto_pub` (MQTT 3.1.1) with `args`, its stdout read line by line. */
export const runMosquittoClient = (
  command: "mosquitto_sub" | "mosquitto_pub",
  args: string[],
  /** Line-buffer stdout (coreutils' stdbuf): `-d` lines reach us as they are printed. */
  options: { lineBuffered?: boolean } = {},
): MosquittoProcess => {
  const argv = [command, "-V", "mqttv311", ...args];
  const [file, ...rest] = options.lineBuffered ? ["stdbuf", "-oL", ...argv] : argv;
  const child = spawn(file!, rest, { stdio: ["ignore", "pipe", "pipe"] });
  const stdout: string[] = [];
  let err = "";
  let buffer = "";
  const waiters: { n: number; resolve: (l: string[]) => void }[] = [];
  child.stdout!.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split("\n");
    buffer = parts.pop()!;
    stdout.push(...parts);
    for (const w of [...waiters]) {
      if (stdout.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(stdout.slice());
      }
    }
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  // "close", not "exit": by then stdout and stderr are fully read.
  const exit = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    child,
    stdout,
    stderr: () => err,
    exit,
    lines: (n) =>
      stdout.length >= n
        ? Promise.resolve(stdout.slice())
        : new Promise((resolve) => waiters.push({ n, resolve })),
  };
};
