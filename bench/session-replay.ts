/**
 * A persistent session that was offline while 100,000 events passed comes
 * back (issue 15): how fast does it get them all? brewcast replays its log
 * after the session's position; Mosquitto, the peer, delivers the queue it
 * kept for the session. Rate = events / (CONNECT → the 100,000th event
 * received). Goal: brewcast / Mosquitto ≥ 1.0.
 *
 *   npm run bench:session-replay                   # 100,000 events, 4 rounds (~5 min)
 *   npm run bench:session-replay -- --quick        # 20,000 events, 1 round
 *   npm run bench:session-replay -- --client mqttjs           # mqtt.js as the resuming client
 *   npm run bench:session-replay -- --replay-profile /tmp/p   # CPU profile of brewcast's replays only
 *
 * The same client resumes on both sides: by default the raw-socket client of
 * bench/raw-mqtt.ts (PUBACKs batched per turn of its event loop), which runs
 * in this process (brewcast and Mosquitto each run in their own); with
 * `--client mqttjs`, mqtt.js (16–29 µs of CPU a message here, so likely the
 * bottleneck). Every round, on each side, a new persistent session
 * (CleanSession=0, QoS 1 on `partners/{p}/shops/+/orders/+`) is created and
 * closed, then the events pass while it is offline, then it resumes and the
 * clock runs from CONNECT until every one of the events has arrived
 * (duplicates and order are checked by seq; the session is removed after).
 *
 * - brewcast: `startBrewcast` (role all, Postgres) in a child process. The
 *   100,000 events are appended to the partner's log with SQL (bench/seed-log.ts:
 *   whole orders of 4 events, ~300-byte order snapshots, prev_shop_seq chained,
 *   head_seq and last_seq moved as a writer does), then the bridge publishes
 *   them (no subscriber is online) and the bench waits until its durable cursor
 *   is at the head. The partner is pinned at `normal`: a burst of 100,000 is lag
 *   the ladder answers with poll_only, and a poll_only partner's sessions are
 *   replayed nothing.
 * - Mosquitto (peer): a private `mosquitto` with `max_queued_messages 200000`,
 *   `persistence false`; a publisher in this process sends the same number of
 *   QoS 1 messages (payloads: the first event brewcast replayed, byte for byte, with the seq set,
 *   on the same topics) while the session is offline. Two peers: Mosquitto's
 *   default `max_inflight_messages` (20) and brewcast's replay window
 *   (REPLAY_WINDOW in src/sessions/live-session.ts, 4,000; 1,000 before 2026-12-03 17:00).
 *
 * Cases run in rounds, the order reversed every other round (bench/harness.ts),
 * after a warm-up of each with a tenth of the events.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { REPLAY_WINDOW } from "../src/sessions/live-session.ts";
import { adminPost, benchAdminToken, waitCaughtUp } from "./lib/admin.ts";
import { type Kid, spawnKid } from "./lib/children.ts";
import { type BenchCase, type Measurement, runComparison } from "./lib/comparison.ts";
import { createBenchDatabase, postgresVersion } from "./lib/database.ts";
import { coresBusy, cpuMsOf, machineCpu, machineNote, sleep } from "./lib/machine.ts";
import { startMosquitto } from "./lib/mosquitto.ts";
import { onCleanup, parseBenchArgs, runBench } from "./lib/run.ts";
import { appendEvents, type SeedShape } from "./seed-log.ts";
import {
  type ClientKind,
  type Credential,
  createSession,
  endSession,
  publishEvents,
  resume,
} from "./session-kit.ts";

const SHOPS = 4;
const SHAPE: SeedShape = { shops: SHOPS, eventsPerOrder: 4, step: "1 millisecond" };
const PARTNER = "replay";
const FILTER = `partners/${PARTNER}/shops/+/orders/+`;

/** The Mosquitto peer with brewcast's replay window. */
const WIDE = `mosquitto, inflight ${REPLAY_WINDOW}`;

const log = (line: string) => process.stderr.write(`[session-replay] ${line}\n`);

interface RoundDetail {
  round: number;
  case: string;
  events: number;
  rate: number;
  connackMs: number;
  firstMs: number;
  totalMs: number;
  serverCpuMs: number;
  /** brewcast only: CPU of the Postgres backends serving its database (its queries' share). */
  postgresCpuMs?: number;
  serverCpuUsPerEvent: number;
  clientCpuMs: number;
  coresBusy: number;
  duplicates: number;
  outOfOrder: number;
  payloadBytesAvg: number;
}

const main = async () => {
  const own = new Set(["--client", "--replay-profile", "--events"]);
  const args = parseBenchArgs(
    process.argv.slice(2).filter((a, i, all) => !own.has(a) && !own.has(all[i - 1]!)),
  );
  const { values } = parseArgs({
    options: {
      client: { type: "string", default: "raw" },
      "replay-profile": { type: "string" },
      events: { type: "string" },
    },
    strict: false,
  });
  const kind: ClientKind = values.client === "mqttjs" ? "mqttjs" : "raw";
  const profileDir = typeof values["replay-profile"] === "string" ? values["replay-profile"] : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const events = values.events ? Number(values.events) : args.quick ? 20_000 : 100_000;
  if (!Number.isInteger(events) || events < 4 || events % 4 !== 0)
    throw new Error("--events must be a positive multiple of 4");
  const rounds = args.rounds ?? (args.quick ? 1 : 4);
  const warmupEvents = Math.max(4, Math.round(events / 40) * 4);

  const db = await createBenchDatabase();
  onCleanup(() => db.drop());
  log(`database ${db.name}`);
  const adminToken = benchAdminToken();
  const brewcast: Kid = await spawnKid(
    "brewcast",
    { DATABASE_URL: db.url, BREWCAST_ADMIN_TOKEN: adminToken, LOG_LEVEL: "warn" },
    args.serverFlags,
  );
  const baseUrl = `http://127.0.0.1:${brewcast.info.http}`;
  const brewcastPort = Number(brewcast.info.mqtt);
  log(`brewcast pid ${brewcast.pid}: http ${brewcast.info.http}, mqtt ${brewcastPort}`);
  await adminPost(baseUrl, adminToken, "/partners", { id: PARTNER, name: "Replay bench" });
  for (let s = 1; s <= SHOPS; s++) {
    const id = `shop-${String(s).padStart(2, "0")}`;
    await adminPost(baseUrl, adminToken, `/partners/${PARTNER}/shops`, { id, name: id });
  }
  const credential = await adminPost(baseUrl, adminToken, `/partners/${PARTNER}/credentials`, {
    kind: "backend",
  });
  const backend: Credential = { username: credential.id as string, password: credential.secret as string };
  const pinned = await fetch(`${baseUrl}/admin/v1/partners/${PARTNER}/state`, {
    method: "PUT",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ state: "normal", reason: "benchmark: a replay, not the ladder" }),
  });
  if (pinned.status !== 200) throw new Error(`pin: ${pinned.status} ${await pinned.text()}`);

  const mosquittoDefault = await startMosquitto({ config: ["max_queued_messages 200000"] });
  const mosquittoWide = await startMosquitto({
    config: ["max_queued_messages 200000", `max_inflight_messages ${REPLAY_WINDOW}`],
  });
  log(
    `mosquitto pids ${mosquittoDefault.pid} (inflight 20), ${mosquittoWide.pid} (inflight ${REPLAY_WINDOW})`,
  );
  const anonymous: Credential = { username: "", password: "" };

  const pgClient = new pg.Client({ connectionString: db.url });
  await pgClient.connect();
  onCleanup(() => pgClient.end());
  const headOf = async () =>
    Number(
      (await pgClient.query<{ h: string }>("SELECT head_seq AS h FROM partners WHERE id = $1", [PARTNER]))
        .rows[0]!.h,
    );
  const base = new Date(Date.now() - 24 * 3_600_000);
  /** CPU so far of each Postgres backend serving the bench's database (pg_stat_activity, /proc). */
  const backendsCpu = async (): Promise<Map<number, number>> => {
    const { rows } = await pgClient.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    const cpu = new Map<number, number>();
    for (const { pid } of rows) {
      try {
        cpu.set(pid, cpuMsOf(pid));
      } catch {
        // gone meanwhile
      }
    }
    return cpu;
  };
  const cpuDelta = (before: Map<number, number>, after: Map<number, number>) => {
    let ms = 0;
    for (const [pid, now] of after) ms += now - (before.get(pid) ?? now);
    return ms;
  };

  /** The peers' payload: the first event brewcast replayed, as it came (its seq is replaced). */
  let template = "";
  const details: RoundDetail[] = [];
  let sessionNo = 0;
  let profileNo = 0;

  const measure = async (
    name: string,
    round: number,
    serverPid: number,
    port: number,
    who: Credential,
    clientId: string,
    from: number,
    count: number,
    profile: boolean,
  ): Promise<Measurement> => {
    const cpu0 = cpuMsOf(serverPid);
    const pg0 = serverPid === brewcast.pid ? await backendsCpu() : undefined;
    const client0 = process.cpuUsage();
    const machine0 = machineCpu();
    if (profile) await brewcast.call("profile-start");
    const r = await resume(kind, port, clientId, who, from, count);
    if (!template) {
      template = r.sample;
      log(`payload of the peers: brewcast's first replayed event, ${Buffer.byteLength(template)} bytes`);
    }
    if (profile) {
      const file = join(profileDir!, `replay-${++profileNo}.cpuprofile`);
      await brewcast.call("profile-stop", { file });
      log(`profile ${file}`);
    }
    const busy = coresBusy(machine0, machineCpu());
    const serverCpuMs = cpuMsOf(serverPid) - cpu0;
    const postgresCpuMs = pg0 === undefined ? undefined : cpuDelta(pg0, await backendsCpu());
    const clientCpu = process.cpuUsage(client0);
    await endSession(port, clientId, who);
    const rate = count / (r.totalMs / 1000);
    if (round > 0) {
      details.push({
        round,
        case: name,
        events: count,
        rate: Math.round(rate),
        connackMs: Number(r.connackMs.toFixed(1)),
        firstMs: Number(r.firstMs.toFixed(1)),
        totalMs: Math.round(r.totalMs),
        serverCpuMs,
        serverCpuUsPerEvent: Number(((serverCpuMs * 1000) / count).toFixed(1)),
        ...(postgresCpuMs === undefined ? {} : { postgresCpuMs }),
        clientCpuMs: Math.round((clientCpu.user + clientCpu.system) / 1000),
        coresBusy: Number(busy.toFixed(2)),
        duplicates: r.duplicates,
        outOfOrder: r.outOfOrder,
        payloadBytesAvg: Math.round(r.payloadBytes / Math.max(1, r.received)),
      });
    }
    log(
      `round ${round} ${name}: ${count} events in ${(r.totalMs / 1000).toFixed(2)} s = ${Math.round(rate)}/s (CONNACK ${r.connackMs.toFixed(1)} ms, first event ${r.firstMs.toFixed(1)} ms; server CPU ${serverCpuMs} ms = ${((serverCpuMs * 1000) / count).toFixed(1)} µs/event${postgresCpuMs === undefined ? "" : `, its Postgres backends ${postgresCpuMs} ms`}; ${r.duplicates} duplicates, ${r.outOfOrder} out of order; payload ${Math.round(r.payloadBytes / Math.max(1, r.received))} B; ${busy.toFixed(2)} cores busy)`,
    );
    return {
      rate,
      unit: "ops/s",
      // This bench's "latency": p50 = CONNECT → first event, p99 = CONNECT → last event.
      latencyMs: {
        p50: Number(r.firstMs.toFixed(1)),
        p90: Number(r.firstMs.toFixed(1)),
        p99: Math.round(r.totalMs),
        max: Math.round(r.totalMs),
      },
      ok: count,
      failed: 0,
      seconds: r.totalMs / 1000,
    };
  };

  const brewcastRound = async (round: number, count: number): Promise<Measurement> => {
    const lag = await waitCaughtUp(db.url, 300_000);
    if (lag > 0) throw new Error(`the bridge is ${lag} events behind`);
    const from = await headOf();
    const clientId = `replay-${++sessionNo}`;
    await createSession(brewcastPort, clientId, backend, FILTER);
    await sleep(300);
    const t = performance.now();
    await appendEvents(pgClient, SHAPE, PARTNER, from, count, base);
    const seeded = performance.now();
    const behind = await waitCaughtUp(db.url, 600_000);
    if (behind > 0) throw new Error(`the bridge is still ${behind} events behind`);
    log(
      `brewcast: ${count} events appended after seq ${from} in ${((seeded - t) / 1000).toFixed(1)} s, published by the bridge in ${((performance.now() - seeded) / 1000).toFixed(1)} s`,
    );
    return measure(
      "brewcast replay",
      round,
      brewcast.pid,
      brewcastPort,
      backend,
      clientId,
      from,
      count,
      profileDir !== undefined && round > 0,
    );
  };

  const mosquittoRound =
    (name: string, m: { port: number; pid: number }) =>
    async (round: number, count: number): Promise<Measurement> => {
      const clientId = `replay-${++sessionNo}`;
      await createSession(m.port, clientId, anonymous, FILTER);
      const t = performance.now();
      await publishEvents(m.port, template, 0, count, {
        partnerId: PARTNER,
        shops: SHOPS,
        eventsPerOrder: SHAPE.eventsPerOrder,
      });
      log(`${name}: ${count} QoS 1 messages published in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      await sleep(300);
      return measure(name, round, m.pid, m.port, anonymous, clientId, 0, count, false);
    };

  const runs: [string, (round: number, count: number) => Promise<Measurement>][] = [
    ["brewcast replay", brewcastRound],
    [
      "mosquitto, inflight 20 (default)",
      mosquittoRound("mosquitto, inflight 20 (default)", mosquittoDefault),
    ],
    [WIDE, mosquittoRound(WIDE, mosquittoWide)],
  ];
  log(`warm-up: ${warmupEvents} events each`);
  for (const [, run] of runs) await run(0, warmupEvents);

  let round = 1;
  const perCase = new Map<string, number>();
  const cases: BenchCase[] = runs.map(([name, run]) => ({
    name,
    ...(name === "brewcast replay" ? { peer: "mosquitto, inflight 20 (default)" } : {}),
    async run() {
      // Each case runs once a round: its count of runs is the round.
      const n = (perCase.get(name) ?? 0) + 1;
      perCase.set(name, n);
      round = n;
      return run(round, events);
    },
  }));
  const machine = machineNote(await postgresVersion(db.url));
  await runComparison({
    bench: "session-replay",
    rounds,
    seconds: 0,
    cases,
    machine,
    ratios: [
      {
        label: "brewcast / mosquitto inflight 20 (default)",
        numerator: "brewcast replay",
        denominator: "mosquitto, inflight 20 (default)",
        goal: 1,
      },
      {
        label: `brewcast / mosquitto inflight ${REPLAY_WINDOW}`,
        numerator: "brewcast replay",
        denominator: WIDE,
        goal: 1,
      },
    ],
    params: {
      events,
      client: kind,
      filter: FILTER,
      shops: SHOPS,
      mosquitto: "2.0, max_queued_messages 200000, persistence false",
      note: "rate = events / (CONNECT → last event); 'p50 ms' = CONNECT → first event, 'p99 ms' = CONNECT → last event",
    },
    details: () => {
      const lines = [
        "per round: case, events/s, CONNACK ms, first event ms, total ms, server CPU µs/event, client CPU ms, cores busy, duplicates, out of order, payload B, Postgres CPU ms (brewcast's backends)",
      ];
      for (const d of details) {
        lines.push(
          `  r${d.round} ${d.case.padEnd(34)} ${String(d.rate).padStart(7)}/s  ${d.connackMs.toFixed(1).padStart(6)}  ${d.firstMs.toFixed(1).padStart(7)}  ${String(d.totalMs).padStart(7)}  ${d.serverCpuUsPerEvent.toFixed(1).padStart(6)}  ${String(d.clientCpuMs).padStart(6)}  ${d.coresBusy.toFixed(2)}  ${d.duplicates}  ${d.outOfOrder}  ${d.payloadBytesAvg}  ${d.postgresCpuMs ?? ""}`,
        );
      }
      return { text: `${lines.join("\n")}\n`, json: details };
    },
  });
};

runBench(main);
