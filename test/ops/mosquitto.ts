/**
 * Support for the tests of the shipped Mosquitto configs: render the lines a
 * partner edits (found by their `# EDIT(name)` markers, so the shipped file is
 * what runs), run a real `mosquitto -c`, and subscribe with `mosquitto_sub`.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const MOSQUITTO_DIR = new URL("../../mosquitto/", import.meta.url);

export const readShipped = (file: string): string => readFileSync(new URL(file, MOSQUITTO_DIR), "utf8");

export const hasCommand = (command: string, args: string[] = ["--help"]): boolean =>
  !spawnSync(command, args, { stdio: "ignore" }).error;

export interface BridgeSettings {
  partner: string;
  /** host:port of brewcast's MQTT listener. */
  address: string;
  username: string;
  password: string;
  clientId: string;
}

/** The markers partner-bridge.conf must carry, each directly above the line it marks. */
export const EDIT_MARKERS = ["partner", "address", "username", "password", "clientid"] as const;
type EditMarker = (typeof EDIT_MARKERS)[number];

const EDIT = /^#\s*EDIT\(([a-z]+)\):/;

/** The marked lines: the first directive (non-comment, non-blank line) after each `# EDIT(name):`. */
export const markedLines = (text: string): { marker: string; index: number; line: string }[] => {
  const lines = text.split("\n");
  const marked: { marker: string; index: number; line: string }[] = [];
  lines.forEach((line, index) => {
    const match = EDIT.exec(line);
    if (!match) return;
    const target = lines.findIndex((next, i) => i > index && next.trim() !== "" && !next.startsWith("#"));
    if (target >= 0) marked.push({ marker: match[1]!, index: target, line: lines[target]! });
  });
  return marked;
};

/** Replaces exactly the marked lines, as the partner guide tells a partner to. */
export const renderPartnerBridge = (text: string, settings: BridgeSettings): string => {
  const lines = text.split("\n");
  const edit: Record<EditMarker, (line: string) => string> = {
    partner: (line) => line.replaceAll("acme", settings.partner),
    address: () => `address ${settings.address}`,
    username: () => `remote_username ${settings.username}`,
    password: () => `remote_password ${settings.password}`,
    clientid: () => `remote_clientid ${settings.clientId}`,
  };
  for (const { marker, index, line } of markedLines(text)) {
    const change = edit[marker as EditMarker];
    if (!change) throw new Error(`unknown EDIT marker ${marker}`);
    lines[index] = change(line);
  }
  return lines.join("\n");
};

import { accepts } from "../support/ports.ts";

export { freePort } from "../support/ports.ts";

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

/** Polls `check` until it returns a value other than undefined/false, or fails naming `what`. */
export const waitFor = async <T>(
  what: string | (() => string),
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === "string" ? what : what()}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
};
