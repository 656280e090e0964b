/**
 * The benchmark harness: every benchmark runs its subject and a peer in the
 * same run, interleaved, and reports the ratio subject/peer, because an
 * absolute figure on a shared machine means little and a ratio survives.
 *
 * - `runComparison` runs the cases in rounds (ABBA order: the order reverses
 *   every round, so a slow drift of the machine hits every case alike),
 *   takes the median rate of each case over the rounds and the median of the
 *   per-round ratios, prints a table, and emits one machine-readable JSON
 *   line (`BENCH_JSON {...}`).
 * - `measureHttp` drives an HTTP target with autocannon; `measureLoop` drives
 *   any async operation (a SQL statement, a client call) with N workers.
 * - `spawnServer` forks a server under test into its own process (so the load
 *   generator does not share its event loop); this file is also that child's
 *   entry point (`--serve <name>`, see SERVERS below).
 * - `createBenchDatabase` creates a throwaway Postgres database and drops it.
 *
 * Benches import this file; nothing in src/ or test/ does.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import os from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";

// ---------------------------------------------------------------- measurements

export interface Measurement {
  /** Successful operations per second (2xx responses for HTTP). */
  rate: number;
  unit: "req/s" | "ops/s";
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  ok: number;
  /** Failed operations: connection errors, timeouts, non-2xx responses. */
  failed: number;
  seconds: number;
}

export interface BenchCase {
  name: string;
  /** The peer this case is compared with (another case's name); absent for a peer itself. */
  peer?: string;
  run(seconds: number): Promise<Measurement>;
}

export interface BenchRatio {
  label: string;
  numerator: string;
  denominator: string;
  /** The ratio must be at least this; printed as met or missed. */
  goal?: number;
}

export interface CaseSummary {
  name: string;
  peer: string | null;
  unit: Measurement["unit"];
  rate: number;
  rates: number[];
  p50: number;
  p99: number;
  failed: number;
}

export interface RatioSummary extends BenchRatio {
  value: number;
  met: boolean | null;
}

export interface ComparisonResult {
  bench: string;
  date: string;
  machine: MachineNote;
  params: Record<string, unknown>;
  cases: CaseSummary[];
  ratios: RatioSummary[];
  /** A bench's own figures beyond rates (see `runComparison`'s `details`). */
  details?: unknown;
}

export interface MachineNote {
  cpus: number;
  cpuModel: string;
  memGiB: number;
  loadavg1: number;
  node: string;
  platform: string;
  postgres?: string;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

const round = (value: number, digits = 2): number => Number(value.toFixed(digits));

export const machineNote = (postgres?: string): MachineNote => ({
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
  memGiB: Math.round(os.totalmem() / 2 ** 30),
  loadavg1: round(os.loadavg()[0] ?? 0),
  node: process.version,
  platform: `${os.platform()} ${os.release()}`,
  ...(postgres ? { postgres } : {}),
});

/** The whole machine's CPU time so far, every core (ms, from `os.cpus()`): see `coresBusy`. */
export interface MachineCpu {
  busyMs: number;
  totalMs: number;
}

export const machineCpu = (): MachineCpu => {
  let busyMs = 0;
  let totalMs = 0;
  for (const { times } of os.cpus()) {
    const all = times.user + times.nice + times.sys + times.idle + times.irq;
    totalMs += all;
    busyMs += all - times.idle;
  }
  return { busyMs, totalMs };
};

/**
 * How many of the machine's cores were busy between two readings, whoever kept them busy: a
 * tail latency measured while both of two cores were busy says more about the machine than the
 * product.
 */
export const coresBusy = (from: MachineCpu, to: MachineCpu): number =>
  to.totalMs > from.totalMs
    ? ((to.busyMs - from.busyMs) / (to.totalMs - from.totalMs)) * os.cpus().length
    : Number.NaN;

const log = (line: string) => process.stderr.write(`${line}\n`);

/**
 * Runs every case `rounds` times, the order reversed every other round, then
 * prints a table (stdout), the ratios, and one `BENCH_JSON` line.
 */
export const runComparison = async (options: {
  bench: string;
  rounds: number;
  /** Length of each case's run in each round. */
  seconds: number;
  cases: BenchCase[];
  ratios?: BenchRatio[];
  params?: Record<string, unknown>;
  machine?: MachineNote;
  /** Run each case once for this long first and discard the result (JIT, caches, pools). */
  warmupSeconds?: number;
  /**
   * A bench's own figures, asked for once every round ran: `text` is printed after the ratios,
   * `json` goes into the BENCH_JSON line as `details`.
   */
  details?: () => { text: string; json: unknown };
}): Promise<ComparisonResult> => {
  const byName = new Map(options.cases.map((c) => [c.name, c]));
  for (const c of options.cases) {
    if (c.peer !== undefined && !byName.has(c.peer)) throw new Error(`case ${c.name}: no peer ${c.peer}`);
  }
  if (options.warmupSeconds) {
    for (const c of options.cases) {
      log(`[${options.bench}] warm-up ${c.name}`);
      await c.run(options.warmupSeconds);
    }
  }
  const samples = new Map<string, Measurement[]>(options.cases.map((c) => [c.name, []]));
  for (let r = 0; r < options.rounds; r++) {
    const order = r % 2 === 0 ? options.cases : [...options.cases].reverse();
    for (const c of order) {
      const m = await c.run(options.seconds);
      samples.get(c.name)!.push(m);
      log(
        `[${options.bench}] round ${r + 1}/${options.rounds} ${c.name}: ${Math.round(m.rate)} ${m.unit}, p99 ${m.latencyMs.p99} ms${m.failed ? `, ${m.failed} failed` : ""}`,
      );
    }
  }

  const cases: CaseSummary[] = options.cases.map((c) => {
    const ms = samples.get(c.name)!;
    return {
      name: c.name,
      peer: c.peer ?? null,
      unit: ms[0]!.unit,
      rate: Math.round(median(ms.map((m) => m.rate))),
      rates: ms.map((m) => Math.round(m.rate)),
      p50: round(median(ms.map((m) => m.latencyMs.p50))),
      p99: round(median(ms.map((m) => m.latencyMs.p99))),
      failed: ms.reduce((sum, m) => sum + m.failed, 0),
    };
  });
  const assertCase = (name: string) => {
    if (!samples.has(name)) throw new Error(`ratio refers to unknown case ${name}`);
  };
  const pairs: BenchRatio[] = [
    ...cases
      .filter((c) => c.peer !== null)
      .map((c) => ({ label: `${c.name} / ${c.peer}`, numerator: c.name, denominator: c.peer! })),
    ...(options.ratios ?? []),
  ];
  // The median of the per-round ratios: the two cases of a round ran minutes apart at
  // most, so a machine that slows down for a while slows both sides of the ratio.
  const ratios: RatioSummary[] = pairs.map((ratio) => {
    assertCase(ratio.numerator);
    assertCase(ratio.denominator);
    const num = samples.get(ratio.numerator)!;
    const den = samples.get(ratio.denominator)!;
    const value = median(num.map((m, r) => m.rate / den[r]!.rate));
    return { ...ratio, value: round(value, 3), met: ratio.goal === undefined ? null : value >= ratio.goal };
  });
  // Peer-vs-subject ratios take their goal from an explicit ratio of the same pair, if any.
  const result: ComparisonResult = {
    bench: options.bench,
    date: new Date().toISOString(),
    machine: options.machine ?? machineNote(),
    params: { rounds: options.rounds, seconds: options.seconds, ...options.params },
    cases,
    ratios: dedupeRatios(ratios),
  };
  const details = options.details?.();
  if (details) result.details = details.json;
  process.stdout.write(formatResult(result));
  if (details) process.stdout.write(`${details.text}\n`);
  process.stdout.write(`BENCH_JSON ${JSON.stringify(result)}\n`);
  return result;
};

const dedupeRatios = (ratios: RatioSummary[]): RatioSummary[] => {
  const seen = new Map<string, RatioSummary>();
  for (const ratio of ratios) {
    const key = `${ratio.numerator}\u0000${ratio.denominator}`;
    const earlier = seen.get(key);
    // An explicit ratio (with a label or goal of its own) replaces the implicit one.
    seen.set(key, earlier && ratio.goal === undefined ? earlier : ratio);
  }
  return [...seen.values()];
};

const pad = (text: string, width: number, right = false) =>
  right ? text.padStart(width) : text.padEnd(width);

export const formatResult = (result: ComparisonResult): string => {
  const m = result.machine;
  const lines = [
    "",
    `${result.bench} — ${result.date}`,
    `machine: ${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB, load ${m.loadavg1} at start, node ${m.node}${m.postgres ? `, ${m.postgres}` : ""}`,
    `params: ${JSON.stringify(result.params)}`,
    "",
  ];
  const nameWidth = Math.max(4, ...result.cases.map((c) => c.name.length));
  lines.push(
    `${pad("case", nameWidth)}  ${pad("rate (median)", 16, true)}  ${pad("rounds", 24)}  ${pad("p50 ms", 8, true)}  ${pad("p99 ms", 8, true)}  ${pad("failed", 6, true)}`,
  );
  for (const c of result.cases) {
    lines.push(
      `${pad(c.name, nameWidth)}  ${pad(`${c.rate.toLocaleString("en-US")} ${c.unit}`, 16, true)}  ${pad(c.rates.join(" "), 24)}  ${pad(String(c.p50), 8, true)}  ${pad(String(c.p99), 8, true)}  ${pad(String(c.failed), 6, true)}`,
    );
  }
  lines.push("");
  const labelWidth = Math.max(5, ...result.ratios.map((r) => r.label.length));
  lines.push(`${pad("ratio", labelWidth)}  ${pad("value", 8, true)}  goal`);
  for (const r of result.ratios) {
    const goal = r.goal === undefined ? "" : `≥ ${r.goal} ${r.met ? "met" : "MISSED"}`;
    lines.push(`${pad(r.label, labelWidth)}  ${pad(r.value.toFixed(3), 8, true)}  ${goal}`);
  }
  lines.push("");
  return `${lines.join("\n")}\n`;
};

// ---------------------------------------------------------------- load generators

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
  latency: { p50: number; p90: number; p99: number; max: number };
}

export interface HttpRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
}

type AutocannonFn = (
  options: Record<string, unknown>,
  callback: (error: Error | null, result: AutocannonResult) => void,
) => unknown;

// autocannon ships no types; this is the part of its API the harness uses.
const autocannon = createRequire(import.meta.url)("autocannon") as AutocannonFn;

/**
 * Drives `url` with autocannon: `connections` keep-alive connections, one
 * request in flight each, for `seconds`. `request()` is called before every
 * request (random cursors, credentials).
 */
export const measureHttp = async (options: {
  url: string;
  connections: number;
  seconds: number;
  request: () => HttpRequest;
}): Promise<Measurement> => {
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    autocannon(
      {
        url: options.url,
        connections: options.connections,
        pipelining: 1,
        duration: options.seconds,
        timeout: 30,
        requests: [{ setupRequest: (req: HttpRequest) => ({ ...req, ...options.request() }) }],
      },
      (error, res) => (error ? reject(error) : resolve(res)),
    );
  });
  let ok = 0;
  for (const [status, stat] of Object.entries(result.statusCodeStats ?? {})) {
    if (status.startsWith("2")) ok += Number(stat.count);
  }
  const failed = result.errors + result.non2xx;
  return {
    rate: ok / result.duration,
    unit: "req/s",
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
    },
    ok,
    failed,
    seconds: result.duration,
  };
};

/**
 * Runs `op(worker)` in a loop on `concurrency` workers for `seconds` and
 * measures each call. A call that throws counts as failed (the first error
 * is logged).
 */
export const measureLoop = async (options: {
  concurrency: number;
  seconds: number;
  op: (worker: number) => Promise<void>;
}): Promise<Measurement> => {
  const latencies: number[] = [];
  let failed = 0;
  let firstError: unknown;
  const start = performance.now();
  const deadline = start + options.seconds * 1000;
  const worker = async (index: number) => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        await options.op(index);
        latencies.push(performance.now() - t0);
      } catch (error) {
        failed++;
        firstError ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, i) => worker(i)));
  const seconds = (performance.now() - start) / 1000;
  if (firstError) log(`measureLoop: ${failed} failed, first: ${(firstError as Error).message}`);
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  return {
    rate: latencies.length / seconds,
    unit: "ops/s",
    latencyMs: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) },
    ok: latencies.length,
    failed,
    seconds,
  };
};

// ---------------------------------------------------------------- databases

export const DEFAULT_ADMIN_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test";

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/**
 * Creates `brewcast_bench_<random>` on the server of `adminUrl`
 * (BENCH_DATABASE_URL, or the local test server) and returns its URL.
 */
export const createBenchDatabase = async (
  adminUrl = process.env.BENCH_DATABASE_URL ?? DEFAULT_ADMIN_DATABASE_URL,
): Promise<BenchDatabase> => {
  const name = `brewcast_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    name,
    url: url.toString(),
    async drop() {
      if (dropped) return;
      dropped = true;
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
};

export const postgresVersion = async (url: string): Promise<string> => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return `postgres ${rows[0]?.v ?? "?"}`;
  } finally {
    await client.end();
  }
};

// ---------------------------------------------------------------- cleanup

const cleanups: (() => Promise<void>)[] = [];

/** Registers a cleanup that runs (last first) at `runCleanups()` or on SIGINT/SIGTERM. */
export const onCleanup = (fn: () => Promise<void>): void => {
  cleanups.push(fn);
};

export const runCleanups = async (): Promise<void> => {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    await fn().catch((error) => log(`cleanup failed: ${(error as Error).message}`));
  }
};

let signalsHooked = false;
const hookSignals = () => {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      void runCleanups().finally(() => process.exit(130));
    });
  }
};

/** Runs a bench's main: cleanups run whether it succeeds, fails or is interrupted. */
export const runBench = (main: () => Promise<void>): void => {
  hookSignals();
  main()
    .then(runCleanups)
    .catch(async (error) => {
      log(`bench failed: ${(error as Error).stack ?? error}`);
      await runCleanups();
      process.exitCode = 1;
    });
};

// ---------------------------------------------------------------- servers in child processes

export interface SpawnedServer {
  port: number;
  url: string;
  pid: number;
  info: Record<string, unknown>;
  stop(): Promise<void>;
}

interface ReadyMessage {
  ready: true;
  port: number;
  info?: Record<string, unknown>;
}

const HARNESS_PATH = fileURLToPath(import.meta.url);

/** A bench's child process (a server under test, a load generator), run under tsx. */
export interface BenchChild {
  child: ChildProcess;
  /** The first message the child sent: it is ready. */
  ready: unknown;
  /** SIGTERM, then SIGKILL after `killAfterMs`; resolves once it exited. */
  stop(): Promise<void>;
}

/**
 * Forks `modulePath` with `args` under tsx, its output on our stderr (stdout is the result
 * table and BENCH_JSON), and waits up to 60 s for its first message.
 */
export const forkBenchChild = async (
  modulePath: string,
  args: string[],
  options: { label: string; env?: Record<string, string>; nodeFlags?: string[]; killAfterMs: number },
): Promise<BenchChild> => {
  const child: ChildProcess = fork(modulePath, args, {
    execArgv: ["--import", "tsx", ...(options.nodeFlags ?? [])],
    env: { ...process.env, ...options.env },
    stdio: ["ignore", 2, 2, "ipc"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ready = await new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${options.label} did not start within 60 s`)), 60_000);
    child.once("message", (message) => {
      clearTimeout(timer);
      resolve(message);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${options.label} exited with code ${code} before it was ready`));
    });
  });
  let stopped = false;
  return {
    child,
    ready,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), options.killAfterMs);
        await exited;
        clearTimeout(timer);
      }
    },
  };
};

/** In a bench child: runs `stop` and exits on SIGTERM or when the parent goes away (the parent decides, not Ctrl-C). */
export const exitWhenStopped = (stop: () => Promise<void>): void => {
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    void stop()
      .catch((error) => process.stderr.write(`stop failed: ${(error as Error).message}\n`))
      .finally(() => process.exit(0));
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", () => {});
  process.on("disconnect", shutdown);
};

/**
 * Forks this file as `--serve <server>` with `env` added, waits for it to
 * listen, and returns its port.
 */
export const spawnServer = async (
  server: keyof typeof SERVERS,
  env: Record<string, string> = {},
  /** Extra node flags for the child, e.g. `["--cpu-prof", "--cpu-prof-dir=/tmp/prof"]` to profile it. */
  nodeFlags: string[] = [],
): Promise<SpawnedServer> => {
  const { child, ready, stop } = await forkBenchChild(HARNESS_PATH, ["--serve", server], {
    label: `server ${server}`,
    env,
    nodeFlags,
    killAfterMs: 10_000,
  });
  const { port, info } = ready as ReadyMessage;
  const spawned: SpawnedServer = {
    port,
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    info: info ?? {},
    stop,
  };
  onCleanup(() => spawned.stop());
  return spawned;
};

/** Sends the ready message to the parent and exits on SIGTERM or when the parent goes away. */
const serveUntilStopped = (port: number, info: Record<string, unknown>, stop: () => Promise<void>) => {
  exitWhenStopped(stop);
  process.send?.({ ready: true, port, info } satisfies ReadyMessage);
};

/**
 * Servers a bench can spawn. Each reads its settings from the environment.
 * - `brewcast`: the whole process through `startBrewcast`, configured by the
 *   usual variables (DATABASE_URL, BREWCAST_ADMIN_TOKEN, LOG_LEVEL); ports
 *   default to 0 (any free one).
 * - `static`: a bare node:http server answering each path of the JSON object
 *   in the file BENCH_STATIC_ROUTES (`{ "/path": <body string> }`, query
 *   ignored) with that body as application/json: the floor a Node HTTP
 *   service cannot beat.
 */
export const SERVERS = {
  async brewcast() {
    const { loadConfig } = await import("../src/config/load-config.ts");
    const { createLogger } = await import("../src/log.ts");
    const { startBrewcast } = await import("../src/main.ts");
    const { config } = loadConfig({
      BREWCAST_HTTP_PORT: "0",
      BREWCAST_MQTT_PORT: "0",
      LOG_LEVEL: "warn",
      ...process.env,
    });
    const running = await startBrewcast(config, createLogger(config.LOG_LEVEL));
    serveUntilStopped(running.ports.http, { adminToken: running.adminToken }, running.stop);
  },
  async static() {
    const file = process.env.BENCH_STATIC_ROUTES;
    if (!file) throw new Error("BENCH_STATIC_ROUTES is not set");
    const routes = new Map<string, Buffer>(
      Object.entries(JSON.parse(readFileSync(file, "utf8")) as Record<string, string>).map(([path, body]) => [
        path,
        Buffer.from(body),
      ]),
    );
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0]!;
      const body = routes.get(path);
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, {
        "content-type": "application/json; charset=utf-8",
        "content-length": body.length,
      });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    serveUntilStopped((server.address() as AddressInfo).port, {}, async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
  },
};

// ---------------------------------------------------------------- command line

export interface BenchArgs {
  quick: boolean;
  rounds: number | undefined;
  seconds: number | undefined;
  /**
   * Node flags for the server under test: `--profile DIR` writes its CPU profile there, and each
   * `--server-node-flag F` adds F (`--server-node-flag=--max-semi-space-size=64`).
   */
  serverFlags: string[];
}

/**
 * The flags every bench accepts: --quick (a short smoke run), --rounds N,
 * --seconds N (per case per round), --profile DIR (CPU profile of the server under test),
 * --server-node-flag F (repeatable: a Node flag for the server under test).
 */
export const parseBenchArgs = (argv = process.argv.slice(2)): BenchArgs => {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      seconds: { type: "string" },
      profile: { type: "string" },
      "server-node-flag": { type: "string", multiple: true },
    },
  });
  const int = (value: string | undefined, flag: string) => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer`);
    return n;
  };
  return {
    quick: values.quick ?? false,
    rounds: int(values.rounds, "rounds"),
    seconds: int(values.seconds, "seconds"),
    serverFlags: [
      ...(values.profile ? ["--cpu-prof", `--cpu-prof-dir=${values.profile}`] : []),
      ...(values["server-node-flag"] ?? []),
    ],
  };
};

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const { values } = parseArgs({ options: { serve: { type: "string" } }, strict: false });
  const name = values.serve;
  if (typeof name !== "string" || !(name in SERVERS)) {
    process.stderr.write(
      `usage: node --import tsx bench/harness.ts --serve <${Object.keys(SERVERS).join("|")}>\n`,
    );
    process.exit(2);
  }
  SERVERS[name as keyof typeof SERVERS]().catch((error) => {
    process.stderr.write(`server ${name} failed: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  });
}

/** A fresh admin token for one bench run's brewcast (BREWCAST_ADMIN_TOKEN). */
export const benchAdminToken = (): string => `bench-${Math.random().toString(36).slice(2)}-admin-token`;

/** POST to the admin API of a brewcast under test; throws unless 201. */
export const adminPost = async (baseUrl: string, token: string, route: string, body: unknown) => {
  const response = await fetch(`${baseUrl}/admin/v1${route}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.status !== 201) throw new Error(`POST ${route}: ${response.status} ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
};
