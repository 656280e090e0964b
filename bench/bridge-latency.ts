/**
 * Commit-to-receive latency (issue 4): 1,000 events/s, 5 partners, 50 MQTT
 * subscribers at QoS 1 (10 per partner), against REST polling of the same
 * events (`GET /v1/events?after=`) by 50 pollers at 1 s and at 100 ms, in
 * the same run, phases interleaved (the order reverses every round).
 *
 * Goals: MQTT p50 ≤ 2 ms, p99 ≤ 10 ms, ≥ 50× better (p50) than 1 s polling;
 * the traffic ratio is printed (busy and idle).
 *
 *   npx tsx bench/bridge-latency.ts              # 2 rounds × 30 s per phase, ~4 min
 *   npx tsx bench/bridge-latency.ts --quick      # 1 round × 5 s
 *   npx tsx bench/bridge-latency.ts --seconds 60 --rounds 1
 *   npx tsx bench/bridge-latency.ts --writer external   # writes from another process (doorbell path)
 *   npx tsx bench/bridge-latency.ts --rate 100          # the path's latency without the queueing
 *   npx tsx bench/bridge-latency.ts --session persistent  # the subscribers hold persistent sessions
 *   npx tsx bench/bridge-latency.ts --session both        # clean vs persistent in the same run (issue 15)
 *
 * Sessions (issue 15): `--session clean` (default) or `persistent` makes the
 * 50 MQTT subscribers hold clean or persistent sessions (CleanSession=0, QoS 1:
 * each delivery tracked for the session's position). `--session both` runs
 * only MQTT phases, two kinds interleaved (ABBA): _mqtt_ with 50 clean
 * subscribers and _mqtt-persistent_ with 50 persistent ones, each group
 * connected for its phase only (new sessions each time, so nothing is
 * replayed: the live path), no polling and no idle phase, and prints
 * persistent / clean for p50 and p99 (median of per-round ratios). Goal ≤ 1.1.
 *
 * The floor, in the same run: the writer also writes each committed event to a
 * plain TCP socket the consumers' process reads (bench/lib/relay.ts
 * `createRelay`), no bridge and no broker, under the same load. Its latency is
 * what any delivery path gets on this machine at that moment; MQTT ÷ floor is
 * brewcast's own share, and a floor above a goal says the goal is the machine's.
 *
 * The writer: the product's `createOrderStore().create()` (bench/lib/writer.ts),
 * one round trip per order, paced at 1,000/s on 16 connections. By default it
 * runs inside the brewcast process (where the API runs) and hands each
 * committed event to what the API's `onCommitted` is (`internalsOf(running).committed`:
 * the leading bridge takes the event in-process). Latency = the time
 * the subscriber's 'message' fired − the time the writer's round trip
 * returned (CLOCK_MONOTONIC in both processes). The subscribers and pollers
 * run in one child process of their own.
 */
import { waitCaughtUp } from "./lib/admin.ts";
import type { LoopStats } from "./lib/child-tools.ts";
import { spawnKid } from "./lib/children.ts";
import { machineLine, printBenchJson } from "./lib/comparison.ts";
import { type LatencyReport, type SessionKind, subscriberSpecs } from "./lib/consumers.ts";
import { postgresVersion } from "./lib/database.ts";
import { coresBusy, cpuMsOf, machineCpu, machineNote, sleep } from "./lib/machine.ts";
import { summarise } from "./lib/receipts.ts";
import { startBrewcastRig, writeRequest } from "./lib/rig.ts";
import { parseBenchArgs, positiveInt, runBench } from "./lib/run.ts";
import { fmt as figure, median } from "./lib/stats.ts";
import type { Commits } from "./lib/writer.ts";

const PARTNERS = 5;
const SHOPS = 4;
const SUBSCRIBERS_PER_PARTNER = 10;
const DEFAULT_RATE = 1_000;
const WRITER_CONNECTIONS = 16;
const POLL_LIMIT = 1_000;

const log = (line: string) => process.stderr.write(`[bridge-latency] ${line}\n`);

type Phase = "mqtt" | "mqtt-persistent" | "poll-1000ms" | "poll-100ms";
const PHASES: Phase[] = ["mqtt", "poll-1000ms", "poll-100ms"];
const INTERVAL: Record<Phase, number> = {
  mqtt: 0,
  "mqtt-persistent": 0,
  "poll-1000ms": 1_000,
  "poll-100ms": 100,
};
const isMqtt = (phase: Phase) => phase === "mqtt" || phase === "mqtt-persistent";

interface PhaseResult extends LatencyReport {
  round: number;
  writeRate: number;
  behind: number;
  /** brewcast's event loop over the phase, and the subscribers' process's: where a tail latency comes from. */
  loop: LoopStats;
  clientsLoop: LoopStats;
  /** Cores of the machine busy over the phase (of `os.cpus().length`), every process counted. */
  machineCoresBusy: number;
  /** brewcast's CPU over the phase, % of one core (its in-process writer included). */
  brewcastCpuPercent: number;
  /** The same commits through a bare socket (the floor), received by the same consumers' process. */
  floor: LatencyReport;
}

/** Figures of this bench's table: one decimal unless asked. */
const fmt = (n: number, digits = 1) => figure(n, digits);
/** A figure of a report from a child: none (NaN) arrives as null over IPC (JSON). */
const twoDecimals = (n: number | null) => (n === null ? Number.NaN : Number(n.toFixed(2)));
const perMinute = (n: number, seconds: number) => (n / seconds) * 60;

const main = async () => {
  // This bench's own flags: --writer inproc|external, --rate N (events/s, default 1,000),
  // --session clean|persistent|both.
  const args = parseBenchArgs(undefined, {
    writer: { type: "string", default: "inproc" },
    rate: { type: "string", default: String(DEFAULT_RATE) },
    session: { type: "string", default: "clean" },
  });
  const values = args.own;
  const sessionMode = values.session as SessionKind | "both";
  if (!["clean", "persistent", "both"].includes(sessionMode))
    throw new Error("--session must be clean, persistent or both");
  const writerMode = values.writer === "external" ? "external" : "inproc";
  const RATE = positiveInt(values.rate, "rate");
  const rounds = args.rounds ?? (args.quick ? 1 : sessionMode === "both" ? 4 : 2);
  const seconds = args.seconds ?? (args.quick ? 5 : 30);
  const idleSeconds = args.quick ? 5 : 20;

  const { db, env, brewcast, baseUrl, partners } = await startBrewcastRig({
    tag: "lat",
    partners: PARTNERS,
    shops: SHOPS,
    serverFlags: args.serverFlags,
    writerConnections: WRITER_CONNECTIONS,
    log,
  });
  const writer = writerMode === "external" ? await spawnKid("writer", env) : brewcast;

  const clients = await spawnKid("clients");
  let generation = 0;
  const group = (phase: "mqtt" | "mqtt-persistent") =>
    subscriberSpecs(
      brewcast.info.mqtt,
      partners,
      SUBSCRIBERS_PER_PARTNER,
      phase,
      phase === "mqtt-persistent" || sessionMode === "persistent" ? "persistent" : "clean",
      `lat${++generation}`,
    );
  if (sessionMode !== "both") await clients.call("subscribe", group("mqtt"));
  const relay = await brewcast.call<{ port: number }>("relay");
  await clients.call("relay", { port: relay.port, partners: partners.map((p) => p.id), bucket: "floor" });
  log(
    `${sessionMode === "both" ? "no" : PARTNERS * SUBSCRIBERS_PER_PARTNER} subscribers connected (clients pid ${clients.pid}), writer: ${writerMode}, sessions: ${sessionMode}`,
  );

  const write = (s: number) =>
    writer.call<Commits>(
      "write",
      writeRequest(partners, {
        rate: RATE,
        seconds: s,
        connections: WRITER_CONNECTIONS,
        wake: writerMode === "inproc" ? "inproc" : "doorbell",
      }),
    );
  const pollSpecs = (phase: Phase, s: number) =>
    partners.flatMap((p) =>
      Array.from({ length: SUBSCRIBERS_PER_PARTNER }, () => ({
        baseUrl,
        secret: p.secret,
        partnerId: p.id,
        bucket: phase,
        intervalMs: INTERVAL[phase],
        seconds: s,
        limit: POLL_LIMIT,
      })),
    );

  const runPhase = async (phase: Phase, round: number, s: number): Promise<PhaseResult> => {
    // Each phase starts with the bridge caught up, whatever the previous one left behind.
    const lag = await waitCaughtUp(db.url);
    if (lag > 0) log(`bridge still ${lag} events behind after 60 s`);
    await clients.call("reset", [phase, "floor"]);
    await brewcast.call("loop");
    await clients.call("loop");
    const cpuBefore = machineCpu();
    const brewcastCpuBefore = cpuMsOf(brewcast.pid);
    const started = performance.now();
    const polling = isMqtt(phase)
      ? Promise.resolve()
      : clients.call("poll", { specs: pollSpecs(phase, s + INTERVAL[phase] / 1000 + 2) });
    const commits = await write(s);
    if (isMqtt(phase)) await sleep(1_000);
    await polling;
    const machineCoresBusy = coresBusy(cpuBefore, machineCpu());
    const brewcastCpuPercent =
      ((cpuMsOf(brewcast.pid) - brewcastCpuBefore) / (performance.now() - started)) * 100;
    const loop = await brewcast.call<LoopStats>("loop");
    const clientsLoop = await clients.call<LoopStats>("loop");
    const report = await clients.call<LatencyReport>("report", { bucket: phase, commits });
    const floor = await clients.call<LatencyReport>("report", { bucket: "floor", commits });
    const writeRate = commits.t.length / commits.seconds;
    log(
      `round ${round} ${phase}: ${report.received}/${report.expected} receipts, p50 ${fmt(report.p50, 2)} ms, p99 ${fmt(report.p99, 2)} ms, max ${fmt(report.max)} ms (floor p50 ${fmt(floor.p50, 2)}, p99 ${fmt(floor.p99, 2)} ms); wrote ${writeRate.toFixed(0)}/s (behind ${commits.behind}, failed ${commits.failed}); brewcast loop delay p50 ${fmt(loop.delayP50Ms)} p99 ${fmt(loop.delayP99Ms)} max ${fmt(loop.delayMaxMs)} ms, GC ${loop.gcCount} pauses, ${fmt(loop.gcTotalMs, 0)} ms, longest ${fmt(loop.gcMaxMs)} ms; consumers' loop delay p99 ${fmt(clientsLoop.delayP99Ms)} max ${fmt(clientsLoop.delayMaxMs)} ms; machine ${fmt(machineCoresBusy, 2)} of ${machineNote().cpus} cores busy`,
    );
    return {
      ...report,
      round,
      writeRate,
      behind: commits.behind,
      loop,
      clientsLoop,
      machineCoresBusy,
      brewcastCpuPercent,
      floor,
    };
  };

  if (sessionMode === "both") {
    // Each MQTT group is connected for its own phase only: the same load, one kind at a time.
    const withGroup = async (phase: "mqtt" | "mqtt-persistent", round: number, s: number) => {
      await waitCaughtUp(db.url);
      await clients.call("subscribe", group(phase));
      await sleep(1_000);
      try {
        return await runPhase(phase, round, s);
      } finally {
        await clients.call("disconnect", [phase]);
        await sleep(500);
      }
    };
    const kinds = ["mqtt", "mqtt-persistent"] as const;
    log("warm-up");
    for (const kind of kinds) await withGroup(kind, 0, 2);
    const both: PhaseResult[] = [];
    for (let r = 1; r <= rounds; r++) {
      for (const kind of r % 2 === 1 ? kinds : [...kinds].reverse())
        both.push(await withGroup(kind, r, seconds));
    }
    return reportBoth(both, { rounds, seconds, rate: RATE, writerMode, dbUrl: db.url });
  }

  log("warm-up");
  await runPhase("mqtt", 0, 2);
  const results: PhaseResult[] = [];
  for (let r = 1; r <= rounds; r++) {
    const order = r % 2 === 1 ? PHASES : [...PHASES].reverse();
    for (const phase of order) results.push(await runPhase(phase, r, seconds));
  }

  // Idle: no writes; every consumer on at once, traffic only.
  log(`idle ${idleSeconds} s`);
  await waitCaughtUp(db.url);
  await clients.call("reset", PHASES);
  await Promise.all([
    clients.call("poll", { specs: pollSpecs("poll-1000ms", idleSeconds) }),
    clients.call("poll", { specs: pollSpecs("poll-100ms", idleSeconds) }),
  ]);
  const idle = new Map<Phase, LatencyReport>();
  for (const phase of PHASES) idle.set(phase, await clients.call<LatencyReport>("report", { bucket: phase }));

  /** The rounds' latencies together: median percentiles, the longest, every receipt. */
  const latencyOf = (rs: LatencyReport[]) => ({
    ...summarise(rs),
    perRoundP50: rs.map((r) => twoDecimals(r.p50)),
  });
  const summary = PHASES.map((phase) => {
    const rs = results.filter((r) => r.bucket === phase);
    const idleReport = idle.get(phase)!;
    return {
      phase,
      ...latencyOf(rs),
      writeRate: median(rs.map((r) => r.writeRate)),
      busyRequestsPerMin: median(rs.map((r) => perMinute(r.requests, r.seconds))),
      busyBytesPerMin: median(rs.map((r) => perMinute(r.bytes, r.seconds))),
      idleRequestsPerMin: perMinute(idleReport.requests, idleReport.seconds),
      idleBytesPerMin: perMinute(idleReport.bytes, idleReport.seconds),
    };
  });
  // The floor of the MQTT phases: the same commits, at the same moments, through a bare socket.
  const mqttRounds = results.filter((r) => r.bucket === "mqtt");
  const floorS = latencyOf(mqttRounds.map((r) => r.floor));
  const overFloor = (key: "p50" | "p99") => median(mqttRounds.map((r) => r[key] / r.floor[key]));
  const by = (phase: Phase) => summary.find((s) => s.phase === phase)!;
  const mqttS = by("mqtt");
  const pollS = by("poll-1000ms");
  const poll100S = by("poll-100ms");
  // Per-round ratios (same round, minutes apart), then the median.
  const perRound = (phase: Phase, key: "p50" | "p99") =>
    median(
      results
        .filter((r) => r.bucket === phase)
        .map((r) => r[key] / results.find((m) => m.bucket === "mqtt" && m.round === r.round)![key]),
    );
  const ratios = [
    { label: "MQTT p50 / floor p50 (same rounds)", value: overFloor("p50") },
    { label: "MQTT p99 / floor p99 (same rounds)", value: overFloor("p99") },
    { label: "1 s polling p50 / MQTT p50", value: perRound("poll-1000ms", "p50"), goal: 50 },
    { label: "1 s polling p99 / MQTT p99", value: perRound("poll-1000ms", "p99") },
    { label: "100 ms polling p50 / MQTT p50", value: perRound("poll-100ms", "p50") },
    { label: "bytes/min busy: 1 s polling / MQTT", value: pollS.busyBytesPerMin / mqttS.busyBytesPerMin },
    {
      label: "bytes/min busy: 100 ms polling / MQTT",
      value: poll100S.busyBytesPerMin / mqttS.busyBytesPerMin,
    },
    { label: "bytes/min idle: 1 s polling / MQTT", value: pollS.idleBytesPerMin / mqttS.idleBytesPerMin },
    {
      label: "bytes/min idle: 100 ms polling / MQTT",
      value: poll100S.idleBytesPerMin / mqttS.idleBytesPerMin,
    },
  ].map((r) => ({ ...r, met: r.goal === undefined ? null : r.value >= r.goal }));
  const goals = [
    { label: "MQTT p50 ≤ 2 ms", value: mqttS.p50, met: mqttS.p50 <= 2 },
    { label: "MQTT p99 ≤ 10 ms", value: mqttS.p99, met: mqttS.p99 <= 10 },
  ];

  const machine = machineNote(await postgresVersion(db.url));
  const lines = [
    "",
    `bridge-latency — ${new Date().toISOString()}`,
    machineLine(machine),
    `params: ${RATE} events/s, ${PARTNERS} partners × ${SHOPS} shops, ${SUBSCRIBERS_PER_PARTNER} consumers per partner (${sessionMode} sessions), writer ${writerMode}, ${rounds} rounds × ${seconds} s, idle ${idleSeconds} s`,
    "",
    "consumer          p50 ms   p90 ms   p99 ms   max ms  p50/round       received/expected  wrote/s  busy req/min  busy kB/min  idle req/min  idle kB/min",
  ];
  for (const s of summary) {
    lines.push(
      `${s.phase.padEnd(16)} ${fmt(s.p50, 2).padStart(7)} ${fmt(s.p90, 2).padStart(8)} ${fmt(s.p99, 2).padStart(8)} ${fmt(s.max).padStart(8)}  ${s.perRoundP50.join(" ").padEnd(14)} ${`${s.received}/${s.expected}`.padStart(18)} ${fmt(s.writeRate, 0).padStart(8)} ${fmt(s.busyRequestsPerMin, 0).padStart(13)} ${fmt(s.busyBytesPerMin / 1024, 0).padStart(12)} ${fmt(s.idleRequestsPerMin, 0).padStart(13)} ${fmt(s.idleBytesPerMin / 1024, 1).padStart(12)}`,
    );
  }
  lines.push(
    `${"floor (socket)".padEnd(16)} ${fmt(floorS.p50, 2).padStart(7)} ${fmt(floorS.p90, 2).padStart(8)} ${fmt(floorS.p99, 2).padStart(8)} ${fmt(floorS.max).padStart(8)}  ${floorS.perRoundP50.join(" ").padEnd(14)} ${`${floorS.received}/${floorS.expected}`.padStart(18)}   (the MQTT phases' commits, written to one bare socket at commit)`,
  );
  const mqttLoops = mqttRounds.map((r) => r.loop);
  const mqttClientLoops = mqttRounds.map((r) => r.clientsLoop);
  lines.push(
    "",
    `brewcast during the MQTT phases (median): event loop delay p50 ${fmt(median(mqttLoops.map((l) => l.delayP50Ms)))} ms, p99 ${fmt(median(mqttLoops.map((l) => l.delayP99Ms)))} ms, max ${fmt(Math.max(...mqttLoops.map((l) => l.delayMaxMs)))} ms; GC ${fmt(median(mqttLoops.map((l) => l.gcTotalMs / seconds)), 0)} ms/s, longest pause ${fmt(Math.max(...mqttLoops.map((l) => l.gcMaxMs)))} ms`,
    `the consumers' process during the MQTT phases (median): event loop delay p99 ${fmt(median(mqttClientLoops.map((l) => l.delayP99Ms)))} ms, max ${fmt(Math.max(...mqttClientLoops.map((l) => l.delayMaxMs)))} ms`,
    `the machine during the MQTT phases (median): ${fmt(median(mqttRounds.map((r) => r.machineCoresBusy)), 2)} of ${machine.cpus} cores busy (every process: brewcast, its writer, Postgres, the consumers, anyone else's)`,
  );
  lines.push("");
  for (const g of goals)
    lines.push(`${g.label.padEnd(40)} ${fmt(g.value, 2).padStart(9)}  ${g.met ? "met" : "MISSED"}`);
  for (const r of ratios)
    lines.push(
      `${r.label.padEnd(40)} ${fmt(r.value, 2).padStart(9)}  ${r.goal === undefined ? "" : `≥ ${r.goal} ${r.met ? "met" : "MISSED"}`}`,
    );
  process.stdout.write(`${lines.join("\n")}\n\n`);
  printBenchJson("bridge-latency", machine, {
    params: {
      rate: RATE,
      partners: PARTNERS,
      shops: SHOPS,
      consumersPerPartner: SUBSCRIBERS_PER_PARTNER,
      writer: writerMode,
      session: sessionMode,
      rounds,
      seconds,
      idleSeconds,
    },
    summary,
    floor: floorS,
    rounds: results,
    goals,
    ratios,
  });
};

/** `--session both`: clean vs persistent subscribers, and the floor of their phases. */
const reportBoth = async (
  results: PhaseResult[],
  params: { rounds: number; seconds: number; rate: number; writerMode: string; dbUrl: string },
) => {
  const kinds = ["mqtt", "mqtt-persistent"] as const;
  const of = (kind: (typeof kinds)[number]) => results.filter((r) => r.bucket === kind);
  const summarize = (rs: LatencyReport[]) => ({
    ...summarise(rs),
    perRoundP50: rs.map((r) => twoDecimals(r.p50)),
    perRoundP99: rs.map((r) => twoDecimals(r.p99)),
  });
  const rows = kinds.map((kind) => {
    const rs = of(kind);
    return {
      phase: kind,
      ...summarize(rs),
      floor: summarize(rs.map((r) => r.floor)),
      writeRate: median(rs.map((r) => r.writeRate)),
      brewcastCpuPercent: median(rs.map((r) => r.brewcastCpuPercent)),
      coresBusy: median(rs.map((r) => r.machineCoresBusy)),
      loopP99: median(rs.map((r) => r.loop.delayP99Ms)),
    };
  });
  const perRound = (key: "p50" | "p99") =>
    median(of("mqtt-persistent").map((p) => p[key] / of("mqtt").find((c) => c.round === p.round)![key]));
  const overFloor = (kind: (typeof kinds)[number], key: "p50" | "p99") =>
    median(of(kind).map((r) => r[key] / r.floor[key]));
  const ratios = [
    { label: "persistent / clean, p50", value: perRound("p50"), goal: 1.1 },
    { label: "persistent / clean, p99", value: perRound("p99"), goal: 1.1 },
    { label: "clean ÷ floor, p50", value: overFloor("mqtt", "p50") },
    { label: "persistent ÷ floor, p50", value: overFloor("mqtt-persistent", "p50") },
    { label: "clean ÷ floor, p99", value: overFloor("mqtt", "p99") },
    { label: "persistent ÷ floor, p99", value: overFloor("mqtt-persistent", "p99") },
    {
      label: "persistent / clean, brewcast CPU per event",
      value: median(
        of("mqtt-persistent").map((p) => {
          const c = of("mqtt").find((r) => r.round === p.round)!;
          return p.brewcastCpuPercent / p.writeRate / (c.brewcastCpuPercent / c.writeRate);
        }),
      ),
    },
  ].map((r) => ({ ...r, met: r.goal === undefined ? null : r.value <= r.goal }));
  const machine = machineNote(await postgresVersion(params.dbUrl));
  const lines = [
    "",
    `bridge-latency, clean vs persistent sessions — ${new Date().toISOString()}`,
    machineLine(machine),
    `params: ${params.rate} events/s, ${PARTNERS} partners × ${SHOPS} shops, ${SUBSCRIBERS_PER_PARTNER} QoS 1 subscribers per partner (one group connected at a time), writer ${params.writerMode}, ${params.rounds} rounds × ${params.seconds} s`,
    "",
    "subscribers       p50 ms   p90 ms   p99 ms   max ms  p50/round            p99/round            received/expected  wrote/s  brewcast CPU  cores busy  floor p50  floor p99",
    ...rows.map(
      (r) =>
        `${(r.phase === "mqtt" ? "clean" : "persistent").padEnd(16)} ${fmt(r.p50, 2).padStart(7)} ${fmt(r.p90, 2).padStart(8)} ${fmt(r.p99, 2).padStart(8)} ${fmt(r.max).padStart(8)}  ${r.perRoundP50.join(" ").padEnd(20)} ${r.perRoundP99.join(" ").padEnd(20)} ${`${r.received}/${r.expected}`.padStart(18)} ${fmt(r.writeRate, 0).padStart(8)} ${`${fmt(r.brewcastCpuPercent)}%`.padStart(13)} ${fmt(r.coresBusy, 2).padStart(11)} ${fmt(r.floor.p50, 2).padStart(10)} ${fmt(r.floor.p99, 2).padStart(10)}`,
    ),
    "",
    ...ratios.map(
      (r) =>
        `${r.label.padEnd(40)} ${fmt(r.value, 3).padStart(9)}  ${r.goal === undefined ? "" : `≤ ${r.goal} ${r.met ? "met" : "MISSED"}`}`,
    ),
    "",
    "",
  ];
  process.stdout.write(lines.join("\n"));
  printBenchJson("bridge-latency", machine, {
    params: {
      rate: params.rate,
      partners: PARTNERS,
      shops: SHOPS,
      consumersPerPartner: SUBSCRIBERS_PER_PARTNER,
      writer: params.writerMode,
      rounds: params.rounds,
      seconds: params.seconds,
      session: "both",
    },
    summary: rows,
    rounds: results,
    ratios,
    goals: ratios.filter((r) => r.goal !== undefined),
  });
};

runBench(main);
