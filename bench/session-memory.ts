/**
 * Memory of offline persistent sessions (issue 15): 10,000 sessions, each of
 * which missed 1,000 events, held by brewcast (a session is a row and a
 * position in the log), by Mosquitto (a queue per session) and by "today's
 * Aedes queue" (stock Aedes 1.2 with its default in-memory persistence: a
 * queued packet per message per session). Figure: the broker process's RSS
 * above its own idle RSS. Goal: brewcast ≤ 100 MiB above idle.
 *
 *   npm run bench:session-memory                  # 10,000 sessions × 1,000 events (~30 min here, 23 of them Mosquitto queueing)
 *   npm run bench:session-memory -- --quick       # 1,000 sessions × 100 events (~1 min)
 *   npm run bench:session-memory -- --sessions 5000 --events 500 --rounds 2
 *   npm run bench:session-memory -- --subjects brewcast,aedes   # leave Mosquitto out
 *
 * Each subject runs in a fresh process of its own, one after the other (the
 * order reversed every other round), and is measured the same way:
 *
 * 1. idle: the process started (brewcast: the partner, its 4 shops and a
 *    backend credential created through the admin API, the partner pinned at
 *    `normal`), 2,000 clean sessions through it (connect, subscribe, leave:
 *    the same churn the sessions bring, without sessions), then its RSS (VmRSS of /proc/<pid>/status) once settled: a
 *    sample a second, after full GCs for the Node processes (run with
 *    --expose-gc), until two in a row are within 1 MiB;
 * 2. the sessions: clients of this process (bench/raw-mqtt.ts) connect with
 *    CleanSession=0 in batches of 200, subscribe at QoS 1 to
 *    `partners/{p}/shops/+/orders/+` (one partner, all sessions on its
 *    orders) and close, so all of them are offline;
 * 3. the events: brewcast's log gets 1,000 events appended with SQL
 *    (bench/seed-log.ts) and the bench waits until the bridge published them
 *    all; Mosquitto and Aedes get 1,000 QoS 1 PUBLISHes (brewcast-shaped JSON,
 *    ~530 bytes, on the same topics) and the bench waits until they are queued
 *    (Aedes: the queue entries counted in its persistence reach sessions ×
 *    events; Mosquitto: its PUBACKs, which it sends once the message is queued
 *    to every subscriber);
 * 4. loaded: RSS again, settled the same way, and the peak (VmHWM);
 * 5. a check: one session resumes and must receive every one of the events.
 *
 * Mosquitto runs with `max_queued_messages` of twice the events (its default,
 * 1,000, would drop the last ones) and `persistence false`.
 */
import { readFileSync } from "node:fs";
import pg from "pg";
import { createPartner, paddedShopId, pinNormal, waitCaughtUp } from "./lib/admin.ts";
import { type Kid, spawnKid } from "./lib/children.ts";
import { printBenchJson } from "./lib/comparison.ts";
import { postgresVersion } from "./lib/database.ts";
import { cpuMsOf, machineNote, sleep } from "./lib/machine.ts";
import { startMosquitto } from "./lib/mosquitto.ts";
import { prepareBrewcast } from "./lib/rig.ts";
import { parseBenchArgs, runBench } from "./lib/run.ts";
import { median } from "./lib/stats.ts";
import { connectRawClient } from "./raw-mqtt.ts";
import { appendEvents, type SeedShape } from "./seed-log.ts";
import { type Credential, publishEvents, resume } from "./session-kit.ts";

const SHOPS = 4;
const SHAPE: SeedShape = { shops: SHOPS, eventsPerOrder: 4, step: "1 millisecond" };
const PARTNER = "memory";
const FILTER = `partners/${PARTNER}/shops/+/orders/+`;
const BATCH = 200;
/** Clean sessions through each broker before its idle reading (see `churn`). */
const CHURN = 2_000;
const MiB = 1024 * 1024;

const log = (line: string) => process.stderr.write(`[session-memory] ${line}\n`);

/** VmRSS and VmHWM (peak) of a process, in MiB. */
const memoryOfPid = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN);
  return { rss: kib("VmRSS") / 1024, hwm: kib("VmHWM") / 1024 };
};

/**
 * RSS once it settles: (full GCs through `collect` for a Node process, then) a sample a second
 * until two in a row differ by less than 1 MiB, at most 20 s. The allocator and V8 give pages
 * back a while after a GC, so a single sample right after start reads high (bench/README.md).
 */
const settledMemory = async (pid: number, collect?: () => Promise<unknown>) => {
  let previous = Number.NaN;
  for (let i = 0; i < 20; i++) {
    await collect?.();
    await sleep(1_000);
    const now = memoryOfPid(pid);
    if (Math.abs(now.rss - previous) < 1) return now;
    previous = now.rss;
  }
  return memoryOfPid(pid);
};

/** A Node child's settled RSS (after full GCs) and its V8 heap, in MiB. */
const nodeMemory = async (kid: Kid) => ({
  ...(await settledMemory(kid.pid, () => kid.call("memory", { gc: true }))),
  heapMib: (await kid.call<{ heapUsed: number }>("memory", { gc: true })).heapUsed / MiB,
});

interface Memory {
  rss: number;
  hwm: number;
  heapMib?: number;
}

/** A subject's RSS: idle, loaded, and loaded (and its peak) above idle; a Node child's V8 heap too. */
const rssFigures = (idle: Memory, loaded: Memory) => ({
  idleRssMib: idle.rss,
  loadedRssMib: loaded.rss,
  aboveIdleMib: loaded.rss - idle.rss,
  peakAboveIdleMib: loaded.hwm - idle.rss,
  ...(idle.heapMib === undefined ? {} : { heapIdleMib: idle.heapMib, heapLoadedMib: loaded.heapMib }),
});

/**
 * Before the idle reading: `count` clean sessions connect, subscribe and leave, BATCH at a time,
 * so that the idle process has been through the same connection churn as the loaded one.
 * Without it brewcast read *lower* with 10,000 sessions than idle (bench/README.md): the churn's GCs
 * gave back start-up pages that a settled idle process still held.
 */
const churn = async (port: number, who: Credential, count: number) => {
  for (let i = 0; i < count; i += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, count - i) }, (_, j) => i + j);
    const clients = await Promise.all(
      batch.map(async (n) => {
        const client = await connectRawClient({ port, clientId: `churn-${n}`, ...who, keepaliveS: 600 });
        await client.subscribe([FILTER], 1);
        return client;
      }),
    );
    for (const client of clients) client.close();
  }
  await sleep(1_000);
};

/** Creates `count` persistent sessions `mem-0`… (QoS 1 on FILTER), `BATCH` at a time, all left offline. */
const createSessions = async (port: number, who: Credential, count: number) => {
  const started = performance.now();
  for (let i = 0; i < count; i += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, count - i) }, (_, j) => i + j);
    const clients = await Promise.all(
      batch.map(async (n) => {
        const client = await connectRawClient({
          port,
          clientId: `mem-${n}`,
          ...who,
          clean: false,
          keepaliveS: 600,
        });
        await client.subscribe([FILTER], 1);
        return client;
      }),
    );
    for (const client of clients) client.close();
    if ((i / BATCH) % 10 === 9) log(`  ${i + batch.length} sessions`);
  }
  log(`  ${count} sessions created in ${((performance.now() - started) / 1000).toFixed(1)} s`);
};

interface SubjectResult {
  round: number;
  subject: string;
  sessions: number;
  events: number;
  idleRssMib: number;
  loadedRssMib: number;
  aboveIdleMib: number;
  peakAboveIdleMib: number;
  /** Node processes: V8 heap used, idle and loaded (after GCs). */
  heapIdleMib?: number;
  heapLoadedMib?: number;
  /** brewcast: the sessions' table and its indexes in Postgres (on disk, not in the process). */
  sessionsTableMib?: number;
  /** Aedes: queue entries its persistence made. */
  queued?: number;
  /** CPU of the process from the first event to all of them queued (brewcast: published). */
  cpuSecondsToQueue: number;
  /** Wall time of the same. */
  secondsToQueue: number;
  /** The check: events the resumed session received. */
  resumedReceived: number;
  setupSeconds: number;
}

const main = async () => {
  const args = parseBenchArgs(undefined, {
    sessions: { type: "string" },
    events: { type: "string" },
    subjects: { type: "string", default: "brewcast,mosquitto,aedes" },
  });
  const values = args.own;
  const sessions = values.sessions ? Number(values.sessions) : args.quick ? 1_000 : 10_000;
  const events = values.events ? Number(values.events) : args.quick ? 100 : 1_000;
  if (!Number.isInteger(sessions) || sessions < 1) throw new Error("--sessions must be a positive integer");
  if (!Number.isInteger(events) || events < 4 || events % 4 !== 0)
    throw new Error("--events must be a positive multiple of 4");
  const rounds = args.rounds ?? 1;
  const nodeFlags = ["--expose-gc", "--max-old-space-size=12288", ...args.serverFlags];
  let template = "";
  let postgres = "";
  const results: SubjectResult[] = [];

  const brewcast = async (round: number): Promise<SubjectResult> => {
    const t0 = performance.now();
    const { db, adminToken, env } = await prepareBrewcast(log);
    postgres ||= await postgresVersion(db.url);
    const kid: Kid = await spawnKid(
      "brewcast",
      {
        ...env,
        // One address connects BATCH clients at once.
        BREWCAST_MAX_PENDING_PER_ADDRESS: String(BATCH * 2),
      },
      nodeFlags,
    );
    try {
      const baseUrl = `http://127.0.0.1:${kid.info.http}`;
      const port = Number(kid.info.mqtt);
      const partner = await createPartner(baseUrl, adminToken, {
        id: PARTNER,
        name: "Memory bench",
        shops: SHOPS,
        shopId: paddedShopId,
      });
      const who: Credential = { username: partner.credentialId, password: partner.secret };
      await pinNormal(baseUrl, adminToken, [partner], "benchmark: sessions, not the ladder");
      await churn(port, who, CHURN);
      const idle = await nodeMemory(kid);
      log(`brewcast pid ${kid.pid}: idle RSS ${idle.rss.toFixed(1)} MiB`);

      await createSessions(port, who, sessions);
      for (let i = 0; ; i++) {
        const stats = await kid.call<{ sessions: { connected: number } }>("broker-stats");
        if (stats.sessions.connected === 0) break;
        if (i > 100) throw new Error(`${stats.sessions.connected} sessions still connected`);
        await sleep(100);
      }
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      let sessionsTableMib: number;
      let queueing = { cpuSeconds: 0, seconds: 0 };
      const cpu0 = cpuMsOf(kid.pid);
      const t1 = performance.now();
      try {
        const { rows } = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM mqtt_sessions");
        if (rows[0]!.n !== sessions) throw new Error(`${rows[0]!.n} sessions stored, not ${sessions}`);
        await appendEvents(client, SHAPE, PARTNER, 0, events, new Date(Date.now() - 3_600_000));
        const behind = await waitCaughtUp(db.url, 300_000);
        if (behind > 0) throw new Error(`the bridge is ${behind} events behind`);
        queueing = { cpuSeconds: (cpuMsOf(kid.pid) - cpu0) / 1000, seconds: (performance.now() - t1) / 1000 };
        const size = await client.query<{ b: string }>("SELECT pg_total_relation_size('mqtt_sessions') AS b");
        sessionsTableMib = Number(size.rows[0]!.b) / MiB;
      } finally {
        await client.end();
      }
      const loaded = await nodeMemory(kid);
      const check = await resume("raw", port, "mem-0", who, 0, events);
      template ||= check.sample;
      return {
        round,
        subject: "brewcast (sessions in the log)",
        sessions,
        events,
        ...rssFigures(idle, loaded),
        sessionsTableMib,
        cpuSecondsToQueue: queueing.cpuSeconds,
        secondsToQueue: queueing.seconds,
        resumedReceived: check.received,
        setupSeconds: (performance.now() - t0) / 1000,
      };
    } finally {
      await kid.stop();
      await db.drop();
    }
  };

  const anonymous: Credential = { username: "", password: "" };
  const publish = (port: number) =>
    publishEvents(port, template, 0, events, { partnerId: PARTNER, shops: SHOPS, eventsPerOrder: 4 });

  const mosquitto = async (round: number): Promise<SubjectResult> => {
    const t0 = performance.now();
    const m = await startMosquitto({ config: [`max_queued_messages ${events * 2}`] });
    try {
      await churn(m.port, anonymous, CHURN);
      const idle = await settledMemory(m.pid);
      log(`mosquitto pid ${m.pid}: idle RSS ${idle.rss.toFixed(1)} MiB`);
      await createSessions(m.port, anonymous, sessions);
      await sleep(1_000);
      const cpu0 = cpuMsOf(m.pid);
      const t1 = performance.now();
      await publish(m.port);
      const cpuSecondsToQueue = (cpuMsOf(m.pid) - cpu0) / 1000;
      const secondsToQueue = (performance.now() - t1) / 1000;
      const loaded = await settledMemory(m.pid);
      const check = await resume("raw", m.port, "mem-0", anonymous, 0, events);
      return {
        round,
        subject: "mosquitto (a queue per session)",
        sessions,
        events,
        ...rssFigures(idle, loaded),
        cpuSecondsToQueue,
        secondsToQueue,
        resumedReceived: check.received,
        setupSeconds: (performance.now() - t0) / 1000,
      };
    } finally {
      await m.stop();
    }
  };

  const aedes = async (round: number): Promise<SubjectResult> => {
    const t0 = performance.now();
    const kid = await spawnKid("aedes", {}, nodeFlags);
    try {
      const port = Number(kid.info.mqtt);
      await churn(port, anonymous, CHURN);
      const idle = await nodeMemory(kid);
      log(`aedes pid ${kid.pid}: idle RSS ${idle.rss.toFixed(1)} MiB`);
      await createSessions(port, anonymous, sessions);
      for (let i = 0; ; i++) {
        const stats = await kid.call<{ connected: number }>("stats");
        if (stats.connected === 0) break;
        if (i > 100) throw new Error(`${stats.connected} clients still connected`);
        await sleep(100);
      }
      const cpu0 = cpuMsOf(kid.pid);
      const t1 = performance.now();
      await publish(port);
      const expected = sessions * events;
      let queued = 0;
      for (let i = 0; ; i++) {
        queued = (await kid.call<{ enqueued: number }>("stats")).enqueued;
        if (queued >= expected) break;
        if (i > 1_200) throw new Error(`aedes queued ${queued} of ${expected} within 10 min`);
        await sleep(500);
      }
      const cpuSecondsToQueue = (cpuMsOf(kid.pid) - cpu0) / 1000;
      const secondsToQueue = (performance.now() - t1) / 1000;
      const loaded = await nodeMemory(kid);
      const check = await resume("raw", port, "mem-0", anonymous, 0, events);
      return {
        round,
        subject: "aedes, default persistence (today's queue)",
        sessions,
        events,
        ...rssFigures(idle, loaded),
        queued,
        cpuSecondsToQueue,
        secondsToQueue,
        resumedReceived: check.received,
        setupSeconds: (performance.now() - t0) / 1000,
      };
    } finally {
      await kid.stop();
    }
  };

  // brewcast first in round 1: its first replayed event is the peers' payload.
  const all = { brewcast, mosquitto, aedes };
  const chosen = String(values.subjects).split(",");
  if (!chosen.includes("brewcast"))
    throw new Error("--subjects: brewcast is always measured (its events are the peers' payload)");
  const subjects = chosen.map((name) => {
    const subject = all[name as keyof typeof all];
    if (!subject) throw new Error(`--subjects: no subject ${name} (brewcast, mosquitto, aedes)`);
    return subject;
  });
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? subjects : [...subjects].reverse();
    for (const subject of order) {
      const r = await subject(round);
      log(
        `round ${round} ${r.subject}: idle ${r.idleRssMib.toFixed(1)} MiB, loaded ${r.loadedRssMib.toFixed(1)} MiB, above idle ${r.aboveIdleMib.toFixed(1)} MiB (peak ${r.peakAboveIdleMib.toFixed(1)}); the resumed session got ${r.resumedReceived}/${events}; ${r.setupSeconds.toFixed(0)} s`,
      );
      if (r.resumedReceived < events) throw new Error(`${r.subject}: the check failed`);
      results.push(r);
    }
  }

  const names = [...new Set(results.map((r) => r.subject))];
  const summary = names.map((subject) => {
    const rs = results.filter((r) => r.subject === subject);
    return {
      subject,
      aboveIdleMib: median(rs.map((r) => r.aboveIdleMib)),
      perRound: rs.map((r) => Number(r.aboveIdleMib.toFixed(1))),
      idleRssMib: median(rs.map((r) => r.idleRssMib)),
      loadedRssMib: median(rs.map((r) => r.loadedRssMib)),
      peakAboveIdleMib: median(rs.map((r) => r.peakAboveIdleMib)),
      heapIdleMib: rs[0]!.heapIdleMib,
      heapLoadedMib: rs[0]!.heapLoadedMib,
      cpuSecondsToQueue: median(rs.map((r) => r.cpuSecondsToQueue)),
      secondsToQueue: median(rs.map((r) => r.secondsToQueue)),
    };
  });
  const of = (prefix: string) => summary.find((s) => s.subject.startsWith(prefix));
  const b = of("brewcast")!;
  const ratios = ["mosquitto", "aedes"].flatMap((peer) => {
    const p = of(peer);
    return p ? [{ label: `brewcast / ${peer} (above idle)`, value: b.aboveIdleMib / p.aboveIdleMib }] : [];
  });
  const goal = { label: "brewcast ≤ 100 MiB above idle", value: b.aboveIdleMib, met: b.aboveIdleMib <= 100 };
  const machine = machineNote(postgres);
  const f = (n: number | undefined) => (n === undefined ? "–" : n.toFixed(1));
  const lines = [
    "",
    `session-memory — ${new Date().toISOString()}`,
    `machine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memGiB} GiB, load ${machine.loadavg1} at end, node ${machine.node}, ${machine.postgres}`,
    `params: ${sessions} offline persistent sessions (one partner, QoS 1 on ${FILTER}), ${events} events missed by each, ${rounds} round(s)`,
    "",
    "subject                                      above idle MiB (median)  per round      idle RSS  loaded RSS  peak above idle  V8 heap idle → loaded  to queue: s (CPU s)",
  ];
  for (const s of summary) {
    lines.push(
      `${s.subject.padEnd(44)} ${f(s.aboveIdleMib).padStart(23)}  ${s.perRound.join(" ").padEnd(13)} ${f(s.idleRssMib).padStart(9)} ${f(s.loadedRssMib).padStart(11)} ${f(s.peakAboveIdleMib).padStart(16)}  ${(s.heapIdleMib === undefined ? "–" : `${f(s.heapIdleMib)} → ${f(s.heapLoadedMib)}`).padEnd(21)}  ${f(s.secondsToQueue)} (${f(s.cpuSecondsToQueue)})`,
    );
  }
  const table = results.find((r) => r.sessionsTableMib !== undefined)?.sessionsTableMib;
  const queued = results.find((r) => r.queued !== undefined)?.queued;
  lines.push(
    "",
    `brewcast's sessions in Postgres (mqtt_sessions with its indexes, on disk): ${f(table)} MiB; aedes queue entries: ${queued?.toLocaleString("en-US") ?? "–"}`,
    "",
  );
  for (const r of ratios) lines.push(`${r.label.padEnd(40)} ${r.value.toFixed(3).padStart(8)}`);
  lines.push(`${goal.label.padEnd(40)} ${f(goal.value).padStart(8)}  ${goal.met ? "met" : "MISSED"}`, "", "");
  process.stdout.write(lines.join("\n"));
  printBenchJson("session-memory", machine, {
    params: { sessions, events, rounds, filter: FILTER, batch: BATCH },
    summary,
    results,
    ratios,
    goals: [goal],
  });
};

runBench(main);
