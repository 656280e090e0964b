/**
 * What the console and kiosk pages cost an idle brewcast (issue 20): three
 * `brewcast start` processes side by side, each on its own embedded database
 * (memory://), no clients, no orders:
 *
 * - off:  BREWCAST_CONSOLE=off (the peer);
 * - on:   BREWCAST_CONSOLE=on, both pages and their scripts fetched once at
 *         the start, then nobody has them open;
 * - open: BREWCAST_CONSOLE=on with one console open throughout (its
 *         GET /admin/v1/status/stream, a database read a second).
 *
 * CPU is utime + stime from /proc/<pid>/stat over each window, as % of one
 * core; the three are measured over the same windows, so a busy machine
 * weighs on all of them alike. Prints each, and on/off and open/off (medians
 * of the per-window ratios). Goal: on/off ≈ 1 (the pages cost nothing unless open).
 *
 *   npx tsx bench/console-idle.ts            # 3 windows × 20 s after a 10 s settle, ~1.5 min
 *   npx tsx bench/console-idle.ts --quick    # 1 window × 5 s
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { cpuMsOf, median, nowMs, sleep } from "./bridge-kit.ts";
import { machineNote, onCleanup, parseBenchArgs, runBench } from "./harness.ts";

const BIN = fileURLToPath(new URL("../bin/brewcast.js", import.meta.url));
const ADMIN_TOKEN = "bench-console-idle-admin-token";
const log = (line: string) => process.stderr.write(`[console-idle] ${line}\n`);

interface Running {
  name: "off" | "on" | "open";
  pid: number;
  url: string;
}

/** Starts `brewcast start` and resolves once it logged the ports it bound. */
const startBrewcast = async (name: Running["name"], console: "on" | "off"): Promise<Running> => {
  const child: ChildProcess = spawn(process.execPath, [BIN, "start"], {
    env: {
      ...process.env,
      DATABASE_URL: "",
      REDIS_URL: "",
      BREWCAST_DATA_DIR: "memory://",
      BREWCAST_HTTP_PORT: "0",
      BREWCAST_MQTT_PORT: "0",
      BREWCAST_ADMIN_TOKEN: ADMIN_TOKEN,
      BREWCAST_CONSOLE: console,
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  onCleanup(async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("exit", resolve));
    }
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    const entry = JSON.parse(line) as { msg?: string; http?: number };
    if (entry.msg === "listening" && entry.http) {
      lines.on("line", () => {}); // keep draining its log
      return { name, pid: child.pid!, url: `http://127.0.0.1:${entry.http}` };
    }
  }
  throw new Error(`${name}: exited before listening`);
};

const main = async () => {
  const args = parseBenchArgs(process.argv.slice(2));
  const windows = args.quick ? 1 : (args.rounds ?? 3);
  const seconds = args.quick ? 5 : (args.seconds ?? 20);
  const settleMs = args.quick ? 2_000 : 10_000;

  const processes = await Promise.all([
    startBrewcast("off", "off"),
    startBrewcast("on", "on"),
    startBrewcast("open", "on"),
  ]);
  const [, on, open] = processes as [Running, Running, Running];
  // "on": the pages were visited once, then closed.
  for (const path of [
    "/console",
    "/kiosk",
    "/pages/console.js",
    "/pages/kiosk.js",
    "/pages/vendor/mqtt.min.js",
  ]) {
    const response = await fetch(`${on.url}${path}`);
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    await response.arrayBuffer();
  }
  // "open": a console stays open: its status stream, read throughout.
  const stream = new AbortController();
  const opened = await fetch(`${open.url}/admin/v1/status/stream`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    signal: stream.signal,
  });
  if (!opened.ok) throw new Error(`status stream: ${opened.status}`);
  let messages = 0;
  void (async () => {
    for await (const chunk of opened.body!) messages += String(chunk).length > 0 ? 1 : 0;
  })().catch(() => undefined);
  onCleanup(async () => stream.abort());

  log(`started; settling ${settleMs / 1000} s`);
  await sleep(settleMs);
  const perWindow: Record<Running["name"], number>[] = [];
  for (let w = 0; w < windows; w++) {
    const before = processes.map((p) => cpuMsOf(p.pid));
    const t0 = nowMs();
    await sleep(seconds * 1_000);
    const elapsed = nowMs() - t0;
    const cpu = Object.fromEntries(
      processes.map((p, i) => [p.name, ((cpuMsOf(p.pid) - before[i]!) / elapsed) * 100]),
    ) as Record<Running["name"], number>;
    perWindow.push(cpu);
    log(
      `window ${w + 1}/${windows}: off ${cpu.off.toFixed(2)}%, on ${cpu.on.toFixed(2)}%, open ${cpu.open.toFixed(2)}%`,
    );
  }

  const cpuOf = (name: Running["name"]) => median(perWindow.map((w) => w[name]));
  const ratio = (name: Running["name"]) => median(perWindow.map((w) => w[name] / Math.max(w.off, 0.01)));
  const result = {
    date: new Date().toISOString(),
    machine: machineNote(),
    windows,
    seconds,
    cpuPercent: { off: cpuOf("off"), on: cpuOf("on"), open: cpuOf("open") },
    ratio: { onOverOff: ratio("on"), openOverOff: ratio("open") },
    statusMessagesRead: messages,
  };
  process.stdout.write(
    [
      "idle brewcast, CPU % of one core (median of windows):",
      `  console off (peer)            ${result.cpuPercent.off.toFixed(2)}%`,
      `  console on, nobody on it      ${result.cpuPercent.on.toFixed(2)}%   on/off   ${result.ratio.onOverOff.toFixed(2)}`,
      `  console on, one console open  ${result.cpuPercent.open.toFixed(2)}%   open/off ${result.ratio.openOverOff.toFixed(2)}`,
      `load average ${result.machine.loadavg1}`,
      `BENCH_JSON ${JSON.stringify(result)}`,
      "",
    ].join("\n"),
  );
};

runBench(main);
