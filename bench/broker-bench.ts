/**
 * Broker benchmark: brewcast's broker against stock Aedes 1.2.0 and
 * Mosquitto, in the same run, each broker in its own process (CPU and RSS
 * read from /proc), driven by raw-socket MQTT 3.1.1 clients so that the
 * client is not the bottleneck. 200-byte payloads.
 *
 *   node --import tsx bench/broker-bench.ts
 *
 * Env: BENCH_N0 (1→1 QoS 0 messages, 100000), BENCH_N1 (1→1 QoS 1, 50000),
 * BENCH_FANOUT_MSGS (1→1000 messages, 200), BENCH_IDLE (idle connections,
 * 10000), BENCH_BURST_MSGS (messages of the 1→1000 burst, 1000 = 1,000,000
 * deliveries), BENCH_SETTLE_S (seconds after the burst, 60), BENCH_BROKERS
 * (brewcast,aedes,mosquitto).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { cpuMsOf, rssMibOf } from "./lib/machine.ts";
import { freePort, waitForPort } from "./lib/net.ts";
import { connectRawClient, type RawClient, publishFrame as rawPublishFrame } from "./raw-mqtt.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const N0 = env("BENCH_N0", 100_000);
const N1 = env("BENCH_N1", 50_000);
const FANOUT_SUBS = 1000;
const FANOUT_MSGS = env("BENCH_FANOUT_MSGS", 200);
const IDLE = env("BENCH_IDLE", 10_000);
const BURST_MSGS = env("BENCH_BURST_MSGS", 1000);
const SETTLE_S = env("BENCH_SETTLE_S", 60);

const PUBLISHER = "cr-benchpublisheraaaaaa";
const SUBSCRIBER = "cr-benchsubscriberaaaaa";
const TOPIC = `partners/bench/devices/${PUBLISHER}/status`;
const PAYLOAD = Buffer.alloc(200, 0x61);

// ---- clients (bench/raw-mqtt.ts) ------------------------------------------------------------------
let clientSeq = 0;
const rawClient = (port: number, user: string): Promise<RawClient> =>
  connectRawClient({ port, clientId: `b${clientSeq++}`, username: user, password: "x", keepaliveS: 600 });
const publishFrame = (qos: 0 | 1, id: number) => rawPublishFrame(TOPIC, PAYLOAD, qos, id);
const subscribe = (client: RawClient, qos: number): Promise<void> => client.subscribe([TOPIC], qos);

// ---- brokers ----------------------------------------------------------------------------------------
interface Peer {
  name: string;
  port: number;
  pid: number;
  child: ChildProcess;
}

const startPeer = async (name: "brewcast" | "aedes" | "mosquitto"): Promise<Peer> => {
  if (name === "mosquitto") {
    const port = await freePort();
    const child = spawn("mosquitto", ["-p", String(port)], { stdio: "ignore" });
    await waitForPort(port, "mosquitto");
    return { name, port, pid: child.pid!, child };
  }
  const nodeFlags = (process.env.BENCH_PEER_NODE_FLAGS ?? "").split(" ").filter(Boolean);
  const child = spawn(process.execPath, [...nodeFlags, "bench/broker-peer.mjs", name], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve) => {
    let out = "";
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes("\n")) resolve(JSON.parse(out.split("\n")[0]!).port);
    });
  });
  return { name, port, pid: child.pid!, child };
};

const stopPeer = (peer: Peer): Promise<void> =>
  new Promise((resolve) => {
    peer.child.once("exit", () => resolve());
    peer.child.kill("SIGKILL");
  });

const procStat = (pid: number) => ({ cpuMs: cpuMsOf(pid) });
const rssBytes = (pid: number): number => rssMibOf(pid) * 1024 * 1024;

// ---- scenarios -------------------------------------------------------------------------------------
const closeAll = async (clients: RawClient[]) => {
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve) => {
          c.socket.once("close", () => resolve());
          c.socket.destroy();
        }),
    ),
  );
};

/** Publishes `n` messages at `qos` (QoS 1 with up to `window` in flight); resolves when `deliveries` arrived. */
const run = async (peer: Peer, subscribers: RawClient[], n: number, qos: 0 | 1, window = 500) => {
  const pub = await rawClient(peer.port, PUBLISHER);
  const deliveries = n * subscribers.length;
  let received = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  for (const s of subscribers) {
    s.onPublish = () => {
      if (++received === deliveries) resolveDone();
    };
  }
  const cpu0 = procStat(peer.pid).cpuMs;
  const t0 = process.hrtime.bigint();
  if (qos === 0) {
    const batch = Buffer.concat(Array.from({ length: 100 }, () => publishFrame(0, 0)));
    for (let sent = 0; sent < n; sent += 100) {
      if (!pub.socket.write(batch)) await new Promise((r) => pub.socket.once("drain", r));
    }
  } else {
    let sent = 0;
    let acked = 0;
    await new Promise<void>((resolve) => {
      const pump = () => {
        const chunk: Buffer[] = [];
        while (sent < n && sent - acked < window) chunk.push(publishFrame(1, (sent++ % 65535) + 1));
        if (chunk.length) pub.socket.write(Buffer.concat(chunk));
      };
      pub.onPuback = () => {
        acked++;
        if (acked === n) resolve();
        else if (sent - acked < window / 2) pump();
      };
      pump();
    });
  }
  await done;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpuMs = procStat(peer.pid).cpuMs - cpu0;
  await closeAll([pub]);
  return { perSecond: deliveries / seconds, cpuUsPerDelivery: (cpuMs * 1000) / deliveries };
};

const connectMany = async (peer: Peer, count: number, user: string): Promise<RawClient[]> => {
  const clients: RawClient[] = [];
  for (let i = 0; i < count; i += 250) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(250, count - i) }, () => rawClient(peer.port, user)),
    );
    clients.push(...batch);
    await new Promise((r) => setTimeout(r, 50));
  }
  return clients;
};

const oneToOne = async (peer: Peer, qos: 0 | 1, n: number) => {
  const sub = await rawClient(peer.port, SUBSCRIBER);
  await subscribe(sub, qos);
  await run(peer, [sub], Math.min(n, 5000), qos); // warm-up
  const result = await run(peer, [sub], n, qos);
  await closeAll([sub]);
  return result;
};

const fanOut = async (peer: Peer, messages: number) => {
  const subs = await connectMany(peer, FANOUT_SUBS, SUBSCRIBER);
  await Promise.all(subs.map((s) => subscribe(s, 1)));
  const result = await run(peer, subs, messages, 1, 20);
  return { subs, result };
};

const idle = async (peer: Peer) => {
  const before = rssBytes(peer.pid);
  const clients = await connectMany(peer, IDLE, SUBSCRIBER);
  const after = rssBytes(peer.pid);
  await closeAll(clients);
  return (after - before) / IDLE;
};

const burst = async (peer: Peer) => {
  const before = rssBytes(peer.pid);
  let peak = before;
  const poll = setInterval(() => {
    peak = Math.max(peak, rssBytes(peer.pid));
  }, 50);
  const { subs, result } = await fanOut(peer, BURST_MSGS);
  peak = Math.max(peak, rssBytes(peer.pid));
  clearInterval(poll);
  await closeAll(subs);
  const settleStart = Date.now();
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  return { before, peak, after: rssBytes(peer.pid), settledS: (Date.now() - settleStart) / 1000, result };
};

const MiB = 1024 * 1024;
const fmt = (n: number | undefined, digits = 0) =>
  n === undefined ? "–" : n.toLocaleString("en-US", { maximumFractionDigits: digits });

const main = async () => {
  const names = (process.env.BENCH_BROKERS ?? "brewcast,aedes,mosquitto").split(",") as (
    | "brewcast"
    | "aedes"
    | "mosquitto"
  )[];
  if (names.includes("brewcast")) {
    // brewcast's broker runs from the compiled build, as in the Docker image (bench/broker-peer.mjs).
    process.stderr.write("building dist/ (npm run build)\n");
    execFileSync("npm", ["run", "--silent", "build"], { stdio: "inherit" });
  }
  const results: Record<string, Record<string, number>> = {};
  for (const name of names) {
    const peer = await startPeer(name);
    const r: Record<string, number> = {};
    const q0 = await oneToOne(peer, 0, N0);
    r.q0 = q0.perSecond;
    r.q0cpu = q0.cpuUsPerDelivery;
    const q1 = await oneToOne(peer, 1, N1);
    r.q1 = q1.perSecond;
    r.q1cpu = q1.cpuUsPerDelivery;
    const f = await fanOut(peer, FANOUT_MSGS);
    await closeAll(f.subs);
    r.fanout = f.result.perSecond;
    r.idleBytes = await idle(peer);
    await stopPeer(peer);
    // The burst on a fresh process, so the RSS figures are its own.
    const fresh = await startPeer(name);
    const b = await burst(fresh);
    r.burstBefore = b.before;
    r.burstPeak = b.peak;
    r.burstAfter = b.after;
    r.burstRate = b.result.perSecond;
    await stopPeer(fresh);
    results[name] = r;
    process.stderr.write(`${name}: ${JSON.stringify(r)}\n`);
  }
  const none = {} as Record<string, number>;
  const b = results.brewcast ?? none;
  const a = results.aedes ?? none;
  const m = results.mosquitto ?? none;
  const row = (label: string, key: string, unit: (v: number) => string) =>
    `| ${label} | ${unit(b[key]!)} | ${unit(a[key]!)} | ${unit(m[key]!)} | ${(b[key]! / a[key]!).toFixed(2)}× | ${(b[key]! / m[key]!).toFixed(2)}× |`;
  const lines = [
    `1→1: QoS 0 ${fmt(N0)} msgs, QoS 1 ${fmt(N1)} msgs; fan-out 1→${FANOUT_SUBS} × ${FANOUT_MSGS} QoS 1; ${fmt(IDLE)} idle connections; burst 1→${FANOUT_SUBS} × ${BURST_MSGS} QoS 1, RSS ${SETTLE_S} s after.`,
    "",
    "| measure | brewcast | stock Aedes | Mosquitto | brewcast/Aedes | brewcast/Mosquitto |",
    "|---|---|---|---|---|---|",
    row("1→1 QoS 0, msgs/s", "q0", (v) => fmt(v)),
    row("1→1 QoS 0, broker CPU µs/msg", "q0cpu", (v) => fmt(v, 1)),
    row("1→1 QoS 1, msgs/s", "q1", (v) => fmt(v)),
    row("1→1 QoS 1, broker CPU µs/msg", "q1cpu", (v) => fmt(v, 1)),
    row("1→1000 QoS 1, deliveries/s", "fanout", (v) => fmt(v)),
    row("RSS per idle connection, KiB", "idleBytes", (v) => fmt(v / 1024, 1)),
    row("burst: RSS before, MiB", "burstBefore", (v) => fmt(v / MiB)),
    row("burst: peak RSS, MiB", "burstPeak", (v) => fmt(v / MiB)),
    row(`burst: RSS ${SETTLE_S} s after, MiB`, "burstAfter", (v) => fmt(v / MiB)),
    row("burst: deliveries/s", "burstRate", (v) => fmt(v)),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
};

await main();
