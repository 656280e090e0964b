/**
 * Shared parts of the bridge and ops benchmarks (bench/bridge-*.ts,
 * bench/ops-*.ts), on top of bench/harness.ts:
 *
 * - `spawnKid(mode)`: a child process of this file speaking a small RPC over
 *   IPC. Modes:
 *   - `brewcast`: `startBrewcast(config, log, BENCH_ROLE)` (role "all" by
 *     default), plus a paced writer in the same process (the API's place)
 *     that hands each committed event to `internalsOf(running).committed`, which is the
 *     API's `onCommitted` (the leading bridge here takes the event in-process;
 *     otherwise the doorbell rings);
 *   - `writer`: the same paced writer alone, ringing the doorbell (the path
 *     of a writer in another process);
 *   - `clients`: MQTT subscribers (raw-socket or mqtt.js, clean or persistent
 *     sessions) and REST pollers that record when each event arrived, keyed
 *     by (partner, seq), and count wire bytes;
 *   - `aedes`: stock Aedes with its default in-memory persistence (the
 *     offline queue a persistent-session bench compares with).
 * - The write path: the product's `createOrderStore(db).create()` (one round
 *   trip: the `brewcast_create_order` function of migration 0004) on a pool
 *   of its own, without HTTP in front, so a 2-core machine can reach 1,000
 *   events/s; through HTTP it does a few hundred orders/s here.
 * - Time: `process.hrtime` (CLOCK_MONOTONIC), which every process on the
 *   machine shares, so a commit time taken in one process and a receipt time
 *   taken in another are comparable to the microsecond.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { Session } from "node:inspector/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import mqtt from "mqtt";
import pg from "pg";
import type { OrderEvent } from "../src/domain/events.ts";
import { adminPost, benchAdminToken, exitWhenStopped, forkBenchChild, onCleanup } from "./harness.ts";
import { connectRawClient, publishPayload, publishTopic } from "./raw-mqtt.ts";

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const log = (line: string) => process.stderr.write(`[bridge-kit] ${line}\n`);

// ---------------------------------------------------------------- admin API

export interface BenchPartner {
  id: string;
  shops: string[];
  credentialId: string;
  secret: string;
}

/** Partners `${prefix}-pNNN`, each with `shops` shops and one backend credential, through the admin API. */
export const createPartners = async (
  baseUrl: string,
  token: string,
  count: number,
  shops: number,
  prefix = "bench",
): Promise<BenchPartner[]> => {
  const one = async (p: number): Promise<BenchPartner> => {
    const id = `${prefix}-p${String(p + 1).padStart(3, "0")}`;
    await adminPost(baseUrl, token, "/partners", { id, name: `Bench partner ${p + 1}` });
    const shopIds: string[] = [];
    for (let s = 1; s <= shops; s++) {
      const shopId = `shop-${s}`;
      await adminPost(baseUrl, token, `/partners/${id}/shops`, { id: shopId, name: `Shop ${s}` });
      shopIds.push(shopId);
    }
    const credential = await adminPost(baseUrl, token, `/partners/${id}/credentials`, { kind: "backend" });
    return { id, shops: shopIds, credentialId: credential.id as string, secret: credential.secret as string };
  };
  const partners: BenchPartner[] = [];
  for (let p = 0; p < count; p += 8) {
    const batch = Array.from({ length: Math.min(8, count - p) }, (_, i) => one(p + i));
    partners.push(...(await Promise.all(batch)));
  }
  return partners;
};

/**
 * Pins partners to `normal` on the degradation ladder, so the monitor does not
 * throttle them when a loaded machine lets the lag pass its thresholds: these
 * benches measure delivery, not the ladder.
 */
export const pinNormal = async (baseUrl: string, token: string, partners: BenchPartner[]) => {
  for (const p of partners) {
    const response = await fetch(`${baseUrl}/admin/v1/partners/${p.id}/state`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ state: "normal", reason: "benchmark: ladder held at normal" }),
    });
    if (response.status !== 200) throw new Error(`pin ${p.id}: ${response.status} ${await response.text()}`);
  }
};

/** Waits until the bridge's durable cursors reach every partner's head (or `timeoutMs` passes). */
export const waitCaughtUp = async (url: string, timeoutMs = 60_000): Promise<number> => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const deadline = nowMs() + timeoutMs;
    for (;;) {
      const { rows } = await client.query<{ lag: string }>(
        `SELECT coalesce(sum(p.head_seq - coalesce(c.published_seq, 0)), 0) AS lag
         FROM partners p LEFT JOIN bridge_cursors c ON c.partner_id = p.id`,
      );
      const lag = Number(rows[0]?.lag ?? 0);
      if (lag === 0 || nowMs() > deadline) return lag;
      await sleep(200);
    }
  } finally {
    await client.end();
  }
};

// ---------------------------------------------------------------- the write path

const SKUS = ["latte-grande", "flat-white", "cappuccino-tall", "cold-brew", "matcha-latte"];
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
export const orderItems = () => [
  { sku: pick(SKUS), quantity: 1 + Math.floor(Math.random() * 3) },
  { sku: "butter-croissant", quantity: 1 },
];

export interface WriteTarget {
  id: string;
  shops: string[];
}

export interface WriteRequest {
  /** Events per second, paced; 0 = as fast as `connections` allow. */
  rate: number;
  seconds: number;
  targets: WriteTarget[];
  connections: number;
  /** brewcast mode: "inproc" = bridge.wake + doorbell (the API's onCommitted); writer mode: "doorbell"; or "none". */
  wake: "inproc" | "doorbell" | "none";
}

/** Commit times: the moment each append's round trip returned (ms, CLOCK_MONOTONIC). */
export interface Commits {
  partners: string[];
  p: number[];
  seq: number[];
  t: number[];
  /** Appends that were due but had not started when the run ended (the writer fell behind). */
  behind: number;
  failed: number;
  seconds: number;
}

interface Appender {
  append(partnerId: string, shopId: string): Promise<OrderEvent>;
  committed(event: OrderEvent): void;
}

/** Runs appends at `rate`/s (or flat out) on up to `connections` at once, for `seconds`. */
const runWriter = async (request: WriteRequest, appender: Appender): Promise<Commits> => {
  const partnerIndex = new Map(request.targets.map((t, i) => [t.id, i]));
  const commits: Commits = {
    partners: request.targets.map((t) => t.id),
    p: [],
    seq: [],
    t: [],
    behind: 0,
    failed: 0,
    seconds: 0,
  };
  let issued = 0;
  let inFlight = 0;
  let firstError: unknown;
  const start = nowMs();
  const end = start + request.seconds * 1000;
  const issue = () => {
    const target = request.targets[issued % request.targets.length]!;
    issued++;
    inFlight++;
    appender
      .append(target.id, pick(target.shops))
      .then((event) => {
        const t = nowMs();
        commits.p.push(partnerIndex.get(target.id)!);
        commits.seq.push(event.seq);
        commits.t.push(t);
        appender.committed(event);
      })
      .catch((error) => {
        commits.failed++;
        firstError ??= error;
      })
      .finally(() => {
        inFlight--;
        if (request.rate === 0 && nowMs() < end) issue();
      });
  };
  if (request.rate === 0) {
    for (let i = 0; i < request.connections; i++) issue();
    while (nowMs() < end) await sleep(20);
  } else {
    while (nowMs() < end) {
      const due = Math.floor(((nowMs() - start) / 1000) * request.rate);
      while (issued < due && inFlight < request.connections) issue();
      await sleep(1);
    }
    commits.behind = Math.max(0, Math.floor(request.seconds * request.rate) - issued);
  }
  while (inFlight > 0) await sleep(2);
  commits.seconds = (nowMs() - start) / 1000;
  if (firstError) log(`writer: ${commits.failed} failed, first: ${(firstError as Error).message}`);
  return commits;
};

// ---------------------------------------------------------------- the floor: a bare socket at commit

/**
 * The machine's floor for commit → another process: the writer writes each committed event,
 * as a JSON line, to a plain TCP socket the consumers' process reads, the moment its round
 * trip returns, with no bridge and no broker in between. It runs beside the product, under
 * the same load, so its latency is what any delivery path gets on this machine at that
 * moment (the writer's loop, the scheduler, loopback TCP, the consumers' loop). Lines are
 * flushed once per turn of the event loop, as the broker flushes its deliveries.
 */
const createRelay = () => {
  const sockets = new Set<net.Socket>();
  let pending: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const out = pending.join("");
    pending = [];
    for (const socket of sockets) socket.write(out);
  };
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.once("close", () => sockets.delete(socket));
  });
  return {
    listen: () =>
      new Promise<number>((resolve) =>
        server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port)),
      ),
    send(event: OrderEvent) {
      if (sockets.size === 0) return;
      pending.push(`${JSON.stringify({ partner_id: event.partner_id, seq: event.seq })}\n`);
      if (scheduled) return;
      scheduled = true;
      setImmediate(flush);
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};

// ---------------------------------------------------------------- child processes

interface RpcMessage {
  rpc: number;
  cmd: string;
  args: unknown;
}

interface RpcReply {
  rpc: number;
  result?: unknown;
  error?: string;
}

export interface Kid {
  pid: number;
  info: Record<string, unknown>;
  call<T = unknown>(cmd: string, args?: unknown): Promise<T>;
  stop(): Promise<void>;
}

const KIT_PATH = fileURLToPath(import.meta.url);

/** Forks this file in `mode` with `env` added; resolves once it is ready. */
export const spawnKid = async (
  mode: "brewcast" | "writer" | "clients" | "aedes",
  env: Record<string, string> = {},
  nodeFlags: string[] = [],
): Promise<Kid> => {
  const { child, ready, stop } = await forkBenchChild(KIT_PATH, ["--kid", mode], {
    label: mode,
    env,
    nodeFlags,
    killAfterMs: 15_000,
  });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let next = 0;
  child.on("message", (message) => {
    const reply = message as RpcReply;
    const waiter = pending.get(reply.rpc);
    if (!waiter) return;
    pending.delete(reply.rpc);
    if (reply.error !== undefined) waiter.reject(new Error(`${mode}: ${reply.error}`));
    else waiter.resolve(reply.result);
  });
  child.once("exit", (code) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`${mode} exited with code ${code}`));
    pending.clear();
  });
  const kid: Kid = {
    pid: child.pid!,
    info: (ready as { ready: Record<string, unknown> }).ready,
    call<T>(cmd: string, args?: unknown) {
      const rpc = ++next;
      return new Promise<T>((resolve, reject) => {
        pending.set(rpc, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ rpc, cmd, args } satisfies RpcMessage);
      });
    },
    stop,
  };
  onCleanup(() => kid.stop());
  return kid;
};

// ---------------------------------------------------------------- process figures

const CLOCK_TICK_MS = 10; // USER_HZ = 100

/** utime + stime of a process (ms of CPU) from /proc. */
export const cpuMsOf = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS;
};

/** Resident set size of a process, in MiB. */
export const rssMibOf = (pid: number): number => {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) / 1024 : Number.NaN;
};

/** Samples a process's CPU over `fn` and its RSS every second; CPU as % of one core. */
export const watchProcess = async <T>(
  pid: number,
  fn: () => Promise<T>,
): Promise<{ result: T; cpuPercent: number; rssMeanMib: number; rssMaxMib: number; seconds: number }> => {
  const rss: number[] = [rssMibOf(pid)];
  const timer = setInterval(() => rss.push(rssMibOf(pid)), 1000);
  const cpu0 = cpuMsOf(pid);
  const t0 = nowMs();
  try {
    const result = await fn();
    const seconds = (nowMs() - t0) / 1000;
    const cpuPercent = ((cpuMsOf(pid) - cpu0) / (seconds * 1000)) * 100;
    rss.push(rssMibOf(pid));
    return {
      result,
      cpuPercent,
      rssMeanMib: rss.reduce((a, b) => a + b, 0) / rss.length,
      rssMaxMib: Math.max(...rss),
      seconds,
    };
  } finally {
    clearInterval(timer);
  }
};

// ---------------------------------------------------------------- mosquitto

export const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });

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
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) break;
    if (i > 200) throw new Error("mosquitto did not listen within 10 s");
    await sleep(50);
  }
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

// ---------------------------------------------------------------- latency figures

export interface LatencyReport {
  bucket: string;
  /** Receipts matched to a commit. */
  received: number;
  /** Receipts expected: commits × consumers of that partner. */
  expected: number;
  /** Receipts of seqs this phase did not write (earlier phases, duplicates). */
  unmatched: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  requests: number;
  bytes: number;
  seconds: number;
}

export const percentile = (sorted: Float64Array | number[], q: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length === 0
    ? Number.NaN
    : sorted.length % 2
      ? sorted[mid]!
      : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

// ---------------------------------------------------------------- the child's side

export interface SubscriberSpec {
  url: string;
  username?: string;
  password?: string;
  filters: string[];
  bucket: string;
  /** CleanSession=0: a persistent session under `clientId` (default: a clean session, a random id). */
  persistent?: boolean;
  clientId?: string;
}

interface PollerSpec {
  baseUrl: string;
  secret: string;
  bucket: string;
  intervalMs: number;
  seconds: number;
  limit: number;
}

/** Receipts of one consumer kind, and its wire traffic since the last reset. */
class Bucket {
  partners = new Map<string, number>();
  names: string[] = [];
  p: number[] = [];
  seq: number[] = [];
  t: number[] = [];
  requests = 0;
  bytes = 0;
  consumersPerPartner = new Map<string, number>();
  startedAt = nowMs();
  firstAt = Number.POSITIVE_INFINITY;
  lastAt = 0;
  record(partnerId: string, seq: number, t: number) {
    let index = this.partners.get(partnerId);
    if (index === undefined) {
      index = this.names.length;
      this.partners.set(partnerId, index);
      this.names.push(partnerId);
    }
    this.p.push(index);
    this.seq.push(seq);
    this.t.push(t);
    if (t < this.firstAt) this.firstAt = t;
    if (t > this.lastAt) this.lastAt = t;
  }
  reset() {
    this.p = [];
    this.seq = [];
    this.t = [];
    this.requests = 0;
    this.bytes = 0;
    this.startedAt = nowMs();
    this.firstAt = Number.POSITIVE_INFINITY;
    this.lastAt = 0;
  }
}

const clientsMode = async () => {
  const buckets = new Map<string, Bucket>();
  const bucket = (name: string) => {
    let b = buckets.get(name);
    if (!b) {
      b = new Bucket();
      buckets.set(name, b);
    }
    return b;
  };
  const mqttClients: { wireBytes: () => number; close: () => void; bucket: Bucket; seen: number }[] = [];
  const socketBytes = (socket: { bytesRead?: number; bytesWritten?: number } | undefined) =>
    (socket?.bytesRead ?? 0) + (socket?.bytesWritten ?? 0);
  const recordEvent = (b: Bucket, payload: Buffer) => {
    const t = nowMs();
    const event = JSON.parse(payload.toString()) as { partner_id: string; seq: number };
    b.record(event.partner_id, event.seq, t);
  };

  /** mqtt.js, when BENCH_SUBSCRIBER=mqttjs: what an application would use, at 16–29 µs of CPU a message. */
  const connectMqttJs = async (spec: SubscriberSpec, b: Bucket) => {
    const client = await mqtt.connectAsync(spec.url, {
      protocolVersion: 4,
      clientId: spec.clientId ?? `bench-${randomUUID().slice(0, 12)}`,
      clean: !spec.persistent,
      reconnectPeriod: 0,
      ...(spec.username !== undefined ? { username: spec.username, password: spec.password } : {}),
    });
    client.on("message", (topic, payload) => {
      if (topic.includes("/orders/")) recordEvent(b, payload);
    });
    client.on("error", (error) => log(`subscriber error: ${error.message}`));
    await client.subscribeAsync(spec.filters, { qos: 1 });
    return {
      wireBytes: () => socketBytes(client.stream as unknown as net.Socket | undefined),
      close: () => void client.endAsync(true),
    };
  };

  /** The default: a raw-socket client (bench/raw-mqtt.ts), so the subscribers leave the CPU to brewcast. */
  const connectRaw = async (spec: SubscriberSpec, b: Bucket) => {
    const url = new URL(spec.url);
    const client = await connectRawClient({
      host: url.hostname,
      port: Number(url.port),
      clientId: spec.clientId ?? `bench-${randomUUID().slice(0, 12)}`,
      username: spec.username ?? "",
      password: spec.password ?? "",
      clean: !spec.persistent,
      onPublish: (body, qos) => {
        if (publishTopic(body).includes("/orders/")) recordEvent(b, publishPayload(body, qos));
      },
    });
    client.socket.on("error", (error) => log(`subscriber error: ${error.message}`));
    await client.subscribe(spec.filters, 1);
    return { wireBytes: () => socketBytes(client.socket), close: () => client.close() };
  };

  const connect = async (specs: SubscriberSpec[]) => {
    const connectOne = process.env.BENCH_SUBSCRIBER === "mqttjs" ? connectMqttJs : connectRaw;
    for (let i = 0; i < specs.length; i += 25) {
      await Promise.all(
        specs.slice(i, i + 25).map(async (spec) => {
          const b = bucket(spec.bucket);
          const { wireBytes, close } = await connectOne(spec, b);
          const entry = { wireBytes, close, bucket: b, seen: wireBytes() };
          mqttClients.push(entry);
          const partner = spec.filters[0]!.split("/")[1]!;
          b.consumersPerPartner.set(partner, (b.consumersPerPartner.get(partner) ?? 0) + 1);
        }),
      );
    }
    return { connected: mqttClients.length };
  };

  /** The floor's reader (see `createRelay`): JSON lines, each recorded when its chunk arrived. */
  const connectRelay = (port: number, b: Bucket) =>
    new Promise<void>((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => resolve());
      socket.setNoDelay(true);
      socket.once("error", reject);
      let rest = "";
      socket.on("data", (chunk: Buffer) => {
        const t = nowMs();
        const lines = (rest + chunk.toString()).split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          const event = JSON.parse(line) as { partner_id: string; seq: number };
          b.record(event.partner_id, event.seq, t);
        }
      });
    });

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1_000 });
  const socketSeen = new WeakMap<net.Socket, number>();
  const get = (url: string, secret: string, b: Bucket) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      let socket: net.Socket | undefined;
      const req = http.get(url, { agent, headers: { authorization: `Bearer ${secret}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          if (socket) {
            const total = socket.bytesRead + socket.bytesWritten;
            b.bytes += total - (socketSeen.get(socket) ?? 0);
            socketSeen.set(socket, total);
          }
          b.requests++;
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() });
        });
        res.on("error", reject);
      });
      req.on("socket", (s) => {
        socket = s;
      });
      req.on("error", reject);
    });

  const poll = async (spec: PollerSpec & { partnerId: string }) => {
    const b = bucket(spec.bucket);
    const base = `${spec.baseUrl}/v1/events`;
    const first = await get(`${base}?after=0&limit=1`, spec.secret, b);
    let after = (JSON.parse(first.body) as { head_seq: number }).head_seq;
    const end = nowMs() + spec.seconds * 1000;
    // Pollers start spread over one interval, as independent clients would be.
    await sleep(Math.random() * spec.intervalMs);
    let errors = 0;
    while (nowMs() < end) {
      const started = nowMs();
      const response = await get(`${base}?after=${after}&limit=${spec.limit}`, spec.secret, b).catch(
        () => undefined,
      );
      const t = nowMs();
      if (response?.status === 200) {
        const page = JSON.parse(response.body) as { events: { partner_id: string; seq: number }[] };
        for (const event of page.events) b.record(event.partner_id, event.seq, t);
        const last = page.events.at(-1);
        if (last) after = last.seq;
        if (page.events.length === spec.limit) continue; // more waiting: read on at once
      } else errors++;
      const wait = started + spec.intervalMs - nowMs();
      if (wait > 0) await sleep(wait);
    }
    return errors;
  };

  const report = (name: string, commits: Commits | undefined): LatencyReport => {
    const b = bucket(name);
    for (const entry of mqttClients) {
      if (entry.bucket !== b) continue;
      const now = entry.wireBytes();
      b.bytes += now - entry.seen;
      entry.seen = now;
    }
    const seconds = (nowMs() - b.startedAt) / 1000;
    const result: LatencyReport = {
      bucket: name,
      received: 0,
      expected: 0,
      unmatched: 0,
      p50: Number.NaN,
      p90: Number.NaN,
      p99: Number.NaN,
      max: Number.NaN,
      requests: b.requests,
      bytes: b.bytes,
      seconds,
    };
    if (!commits) {
      result.received = b.t.length;
      return result;
    }
    // (partner, seq) → commit time
    const committed = new Map<string, Map<number, number>>();
    for (let i = 0; i < commits.t.length; i++) {
      const partner = commits.partners[commits.p[i]!]!;
      let bySeq = committed.get(partner);
      if (!bySeq) {
        bySeq = new Map();
        committed.set(partner, bySeq);
      }
      bySeq.set(commits.seq[i]!, commits.t[i]!);
      result.expected += b.consumersPerPartner.get(partner) ?? 0;
    }
    const latencies: number[] = [];
    for (let i = 0; i < b.t.length; i++) {
      const partner = b.names[b.p[i]!]!;
      const at = committed.get(partner)?.get(b.seq[i]!);
      if (at === undefined) {
        result.unmatched++;
        continue;
      }
      latencies.push(b.t[i]! - at);
    }
    const sorted = Float64Array.from(latencies).sort();
    result.received = sorted.length;
    result.p50 = percentile(sorted, 0.5);
    result.p90 = percentile(sorted, 0.9);
    result.p99 = percentile(sorted, 0.99);
    result.max = sorted.length ? sorted[sorted.length - 1]! : Number.NaN;
    return result;
  };

  const loop = watchEventLoop();
  serve({}, async (cmd, args) => {
    switch (cmd) {
      case "loop":
        return loop.take();
      case "subscribe":
        return connect(args as SubscriberSpec[]);
      case "disconnect": {
        // Closes the subscribers of these buckets (a persistent session stays, offline).
        const names = new Set(args as string[]);
        let closed = 0;
        for (let i = mqttClients.length - 1; i >= 0; i--) {
          const entry = mqttClients[i]!;
          if (![...names].some((name) => buckets.get(name) === entry.bucket)) continue;
          entry.close();
          mqttClients.splice(i, 1);
          closed++;
        }
        for (const name of names) bucket(name).consumersPerPartner.clear();
        return { closed };
      }
      case "reset":
        for (const name of args as string[]) {
          const b = bucket(name);
          b.reset();
          for (const entry of mqttClients) if (entry.bucket === b) entry.seen = entry.wireBytes();
        }
        return null;
      case "poll": {
        const { specs } = args as { specs: (PollerSpec & { partnerId: string })[] };
        for (const spec of specs) bucket(spec.bucket).consumersPerPartner.clear();
        for (const spec of specs) {
          const b = bucket(spec.bucket);
          b.consumersPerPartner.set(spec.partnerId, (b.consumersPerPartner.get(spec.partnerId) ?? 0) + 1);
        }
        const errors = await Promise.all(specs.map(poll));
        return { errors: errors.reduce((a, b) => a + b, 0) };
      }
      case "relay": {
        const { port, partners, bucket: name } = args as { port: number; partners: string[]; bucket: string };
        const b = bucket(name);
        for (const partner of partners) b.consumersPerPartner.set(partner, 1);
        await connectRelay(port, b);
        return null;
      }
      case "count": {
        const b = bucket(args as string);
        return { count: b.t.length, firstAt: b.firstAt, lastAt: b.lastAt };
      }
      case "report": {
        const { bucket: name, commits } = args as { bucket: string; commits?: Commits };
        return report(name, commits);
      }
      default:
        throw new Error(`unknown command ${cmd}`);
    }
  });
};

/**
 * A product module for the brewcast child and the writer: the TypeScript source through tsx,
 * or with BENCH_BUILD=dist the compiled build (`npm run build`), which is what
 * the Docker image runs.
 */
const productModule = <T>(name: string): Promise<T> =>
  import(process.env.BENCH_BUILD === "dist" ? `../dist/${name}.js` : `../src/${name}.ts`) as Promise<T>;

const makeAppender = async (committed: (event: OrderEvent) => void) => {
  const { openDb } = await productModule<typeof import("../src/store/open-db.ts")>("store/open-db");
  const { createOrderStore } = await productModule<typeof import("../src/store/orders.ts")>("store/orders");
  const { createLogger } = await productModule<typeof import("../src/log.ts")>("log");
  const connections = Number(process.env.BENCH_WRITER_CONNECTIONS ?? "16");
  const db = await openDb({
    databaseUrl: process.env.DATABASE_URL,
    dataDir: "./data",
    log: createLogger("warn"),
    poolSize: connections,
  });
  const orders = createOrderStore(db);
  const appender: Appender = {
    async append(partnerId, shopId) {
      const change = await orders.create(
        { partnerId, shopId: null },
        { shop_id: shopId, items: orderItems() },
      );
      if (!change.event) throw new Error("an order was created without its event");
      return change.event;
    },
    committed,
  };
  return { db, appender };
};

/** How a bench child's event loop fared since the last `take()`: its delay and the GC pauses. */
export interface LoopStats {
  delayP50Ms: number;
  delayP99Ms: number;
  delayMaxMs: number;
  gcCount: number;
  gcTotalMs: number;
  gcMaxMs: number;
}

const watchEventLoop = () => {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const pauses: number[] = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push(entry.duration);
  }).observe({ entryTypes: ["gc"] });
  return {
    take(): LoopStats {
      const stats = {
        delayP50Ms: delay.percentile(50) / 1e6,
        delayP99Ms: delay.percentile(99) / 1e6,
        delayMaxMs: delay.max / 1e6,
        gcCount: pauses.length,
        gcTotalMs: pauses.reduce((a, b) => a + b, 0),
        gcMaxMs: Math.max(0, ...pauses),
      };
      delay.reset();
      pauses.length = 0;
      return stats;
    },
  };
};

/**
 * This process's memory (`process.memoryUsage()`), after full GCs when asked and the process runs
 * with --expose-gc (`gc: false` in the answer otherwise).
 */
export const memoryOf = async (collect: boolean) => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (collect && gc) {
    for (let i = 0; i < 3; i++) {
      gc();
      await sleep(200);
    }
  }
  return { ...process.memoryUsage(), gc: collect && gc !== undefined };
};

/**
 * A CPU profile of this process over a window a bench chooses (`--profile` profiles the whole
 * life of the process: start, seeding, the bridge catching up): start, then stop and write a
 * `.cpuprofile` that bench/profile-top.ts reads.
 */
const windowProfiler = () => {
  let session: Session | undefined;
  return {
    async start() {
      session = new Session();
      session.connect();
      await session.post("Profiler.enable");
      await session.post("Profiler.setSamplingInterval", { interval: 200 });
      await session.post("Profiler.start");
      return null;
    },
    async stop(file: string) {
      if (!session) throw new Error("no profile started");
      const { profile } = await session.post("Profiler.stop");
      session.disconnect();
      session = undefined;
      writeFileSync(file, JSON.stringify(profile));
      return { file };
    },
  };
};

const brewcastMode = async () => {
  const { loadConfig } =
    await productModule<typeof import("../src/config/load-config.ts")>("config/load-config");
  const { createLogger } = await productModule<typeof import("../src/log.ts")>("log");
  const { internalsOf, startBrewcast } = await productModule<typeof import("../src/main.ts")>("main");
  const { createDoorbell } = await productModule<typeof import("../src/store/doorbell.ts")>("store/doorbell");
  const role = (process.env.BENCH_ROLE ?? "all") as "all" | "bridge" | "broker";
  const { config } = loadConfig({
    BREWCAST_HTTP_PORT: "0",
    BREWCAST_MQTT_PORT: "0",
    LOG_LEVEL: "warn",
    ...process.env,
  });
  const logger = createLogger(config.LOG_LEVEL);
  const running = await startBrewcast(config, logger, role);
  const internals = internalsOf(running);
  const doorbell = createDoorbell(internals.db);
  const loop = watchEventLoop();
  const relay = createRelay();
  // The webhook bench's latency floor (bench/webhook-kit.ts): each commit POSTed with undici at once.
  const httpFloor = process.env.BENCH_HTTP_FLOOR_URL
    ? (await import("./webhook-kit.ts")).createHttpFloor(process.env.BENCH_HTTP_FLOOR_URL)
    : undefined;
  const profiler = windowProfiler();
  let writer: Awaited<ReturnType<typeof makeAppender>> | undefined;
  let wakeMode: WriteRequest["wake"] = "inproc";
  serve(
    { http: running.ports.http, mqtt: running.ports.mqtt ?? null, adminToken: running.adminToken },
    async (cmd, args) => {
      if (cmd === "loop") return loop.take();
      if (cmd === "relay") return { port: await relay.listen() };
      if (cmd === "memory") return memoryOf(Boolean((args as { gc?: boolean } | undefined)?.gc));
      if (cmd === "broker-stats") return internals.broker?.stats() ?? null;
      if (cmd === "profile-start") return profiler.start();
      if (cmd === "profile-stop") return profiler.stop((args as { file: string }).file);
      if (cmd !== "write") throw new Error(`unknown command ${cmd}`);
      const request = args as WriteRequest;
      wakeMode = request.wake;
      writer ??= await makeAppender((event) => {
        relay.send(event);
        httpFloor?.send(event);
        if (wakeMode === "inproc") internals.committed(event);
        else if (wakeMode === "doorbell") doorbell.ring(event);
      });
      return runWriter(request, writer.appender);
    },
    async () => {
      await relay.close();
      await httpFloor?.close();
      await doorbell.flush();
      await writer?.db.close();
      await running.stop();
    },
  );
};

/**
 * Stock Aedes 1.2 with its default persistence (aedes-persistence in memory: every QoS 1/2
 * message for an offline persistent session is queued as a packet of its own), on a free port:
 * what a broker that queues per message holds. `enqueued` counts the queue entries it made.
 */
const aedesMode = async () => {
  const { Aedes } = await import("aedes");
  const broker = await Aedes.createBroker();
  const persistence = (broker as unknown as { persistence: unknown }).persistence as {
    outgoingEnqueueCombi(subs: unknown[], packet: unknown, cb?: unknown): unknown;
  };
  let enqueued = 0;
  const enqueue = persistence.outgoingEnqueueCombi.bind(persistence);
  persistence.outgoingEnqueueCombi = (subs, packet, cb) => {
    enqueued += subs.length;
    return enqueue(subs, packet, cb);
  };
  const server = net.createServer((socket) => broker.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  serve(
    { mqtt: (server.address() as net.AddressInfo).port },
    async (cmd, args) => {
      if (cmd === "memory") return memoryOf(Boolean((args as { gc?: boolean } | undefined)?.gc));
      if (cmd === "stats") return { enqueued, connected: broker.connectedClients };
      throw new Error(`unknown command ${cmd}`);
    },
    async () => {
      server.close();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  );
};

const writerMode = async () => {
  const { createDoorbell } = await productModule<typeof import("../src/store/doorbell.ts")>("store/doorbell");
  let wakeMode: WriteRequest["wake"] = "doorbell";
  let ring: (event: OrderEvent) => void = () => {};
  const writer = await makeAppender((event) => {
    if (wakeMode !== "none") ring(event);
  });
  const doorbell = createDoorbell(writer.db);
  ring = (event) => doorbell.ring(event);
  serve(
    {},
    async (cmd, args) => {
      if (cmd !== "write") throw new Error(`unknown command ${cmd}`);
      const request = args as WriteRequest;
      wakeMode = request.wake;
      return runWriter(request, writer.appender);
    },
    async () => {
      await doorbell.flush();
      await writer.db.close();
    },
  );
};

/** The child's RPC loop: one reply per request; SIGTERM or a lost parent stops it. */
const serve = (
  info: Record<string, unknown>,
  handle: (cmd: string, args: unknown) => Promise<unknown>,
  stop: () => Promise<void> = async () => {},
) => {
  exitWhenStopped(stop);
  process.on("message", (message) => {
    const { rpc, cmd, args } = message as RpcMessage;
    handle(cmd, args).then(
      (result) => process.send?.({ rpc, result } satisfies RpcReply),
      (error) => process.send?.({ rpc, error: (error as Error).stack ?? String(error) } satisfies RpcReply),
    );
  });
  process.send?.({ ready: info });
};

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const mode = process.argv[process.argv.indexOf("--kid") + 1];
  const modes: Record<string, () => Promise<void>> = {
    brewcast: brewcastMode,
    writer: writerMode,
    clients: clientsMode,
    aedes: aedesMode,
  };
  const run = mode ? modes[mode] : undefined;
  if (!run) {
    process.stderr.write(
      "usage: node --import tsx bench/bridge-kit.ts --kid <brewcast|writer|clients|aedes>\n",
    );
    process.exit(2);
  }
  run().catch((error) => {
    process.stderr.write(`${mode} failed: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  });
}

// ---------------------------------------------------------------- the whole-process rig

export interface LoadRig {
  dbUrl: string;
  dbName: string;
  brewcast: Kid;
  writer: Kid;
  clients: Kid;
  partners: BenchPartner[];
  baseUrl: string;
  /** The subscribers' sessions now. */
  session: SessionKind;
  /**
   * Closes the subscribers and connects new ones (a new client id each, so a persistent one is a
   * new session: nothing to replay, the live path only).
   */
  resubscribe(session: SessionKind): Promise<void>;
  /** Writes at `rate` for `seconds` from the writer process (doorbell wake-up). */
  write(rate: number, seconds: number): Promise<Commits>;
  /** Receipts counted by the subscribers since the last call. */
  takeReceipts(): Promise<number>;
}

/**
 * The whole process (role "all") with `partners` partners, one QoS 1
 * subscriber each (a child process), and a writer in another process that
 * creates orders through the store and rings the doorbell after each commit.
 */
/** A subscriber's session: CleanSession=1, or a persistent session (CleanSession=0). */
export type SessionKind = "clean" | "persistent";

/** `count` QoS 1 subscribers per partner on its orders and cursor; persistent ones under `${tag}-…` ids. */
export const subscriberSpecs = (
  mqttPort: unknown,
  partners: BenchPartner[],
  count: number,
  bucket: string,
  session: SessionKind,
  tag: string,
): SubscriberSpec[] =>
  partners.flatMap((p) =>
    Array.from({ length: count }, (_, i) => ({
      url: `mqtt://127.0.0.1:${mqttPort}`,
      username: p.credentialId,
      password: p.secret,
      filters: [`partners/${p.id}/shops/+/orders/+`, `partners/${p.id}/cursor`],
      bucket,
      ...(session === "persistent" ? { persistent: true, clientId: `${tag}-${p.id}-${i}` } : {}),
    })),
  );

export const startLoadRig = async (options: {
  partners: number;
  shops: number;
  serverFlags: string[];
  writerConnections?: number;
  /** The subscribers' sessions at start (default clean). */
  session?: SessionKind;
  createDatabase: () => Promise<{ name: string; url: string; drop(): Promise<void> }>;
}): Promise<LoadRig> => {
  const db = await options.createDatabase();
  onCleanup(() => db.drop());
  log(`database ${db.name}`);
  const adminToken = benchAdminToken();
  const env = {
    DATABASE_URL: db.url,
    BREWCAST_ADMIN_TOKEN: adminToken,
    LOG_LEVEL: "warn",
    BENCH_WRITER_CONNECTIONS: String(options.writerConnections ?? 16),
  };
  const brewcast = await spawnKid("brewcast", env, options.serverFlags);
  const baseUrl = `http://127.0.0.1:${brewcast.info.http}`;
  const partners = await createPartners(baseUrl, adminToken, options.partners, options.shops, "load");
  await pinNormal(baseUrl, adminToken, partners);
  const writer = await spawnKid("writer", env);
  const clients = await spawnKid("clients");
  let generation = 0;
  const subscribe = (session: SessionKind) =>
    clients.call(
      "subscribe",
      subscriberSpecs(brewcast.info.mqtt, partners, 1, "load", session, `rig${++generation}`),
    );
  const session = options.session ?? "clean";
  await subscribe(session);
  log(
    `brewcast pid ${brewcast.pid}, writer pid ${writer.pid}, ${partners.length} subscribers, ${session} sessions (pid ${clients.pid})`,
  );
  const connections = options.writerConnections ?? 16;
  const rig: LoadRig = {
    dbUrl: db.url,
    dbName: db.name,
    brewcast,
    writer,
    clients,
    partners,
    baseUrl,
    session,
    async resubscribe(next) {
      await clients.call("disconnect", ["load"]);
      await sleep(500);
      await subscribe(next);
      rig.session = next;
      await sleep(1_000);
      await clients.call("reset", ["load"]);
    },
    write: (rate, seconds) =>
      writer.call<Commits>("write", {
        rate,
        seconds,
        targets: partners.map((p) => ({ id: p.id, shops: p.shops })),
        connections,
        wake: "doorbell",
      } satisfies WriteRequest),
    async takeReceipts() {
      const { count } = await clients.call<{ count: number }>("count", "load");
      await clients.call("reset", ["load"]);
      return count;
    },
  };
  return rig;
};
