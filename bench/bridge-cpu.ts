/**
 * CPU of the whole brewcast process (role "all": API, embedded Aedes,
 * bridge) at 1,000 events/s with 100 partners connected, one QoS 1
 * subscriber each (issue 4). Goal: ≤ 25% of one core.
 *
 *   npx tsx bench/bridge-cpu.ts            # 3 rounds × (20 s busy + 20 s idle), ~3 min
 *   npx tsx bench/bridge-cpu.ts --quick
 *
 * CPU is utime + stime of the process from /proc/<pid>/stat over each
 * window, as % of one core. The events come from a writer in another
 * process (the product's order store, one round trip per order, ringing the
 * doorbell after each commit), so the figure is the delivery side: the LISTEN
 * connection, the bridge (reads, publishes, cursors) and Aedes fanning out
 * to 100 subscribers; HTTP order handling is not in it (POST /v1/orders does
 * far fewer than 1,000/s on this machine: bench/README.md). In the same run, interleaved:
 * - idle windows (no writes, the same 100 subscribers): the floor;
 * - the writer process's own CPU for the same 1,000 appends/s, as a peer:
 *   what merely writing these events through `pg` costs a Node process.
 * When the writer cannot reach 1,000/s (a loaded machine), the CPU is also
 * given scaled linearly to 1,000/s.
 *
 * Subscribers' sessions (issue 15): `--session clean` (default) or
 * `--session persistent` (CleanSession=0: every delivery is tracked for the
 * session's position, written every BREWCAST_SESSION_FLUSH_MS); `--session both`
 * runs both in the same run: each round has a busy and an idle window with
 * clean subscribers and the same with persistent ones (100 new sessions each
 * time, so nothing is replayed: the live path only), the order reversed every
 * other round, and prints persistent / clean. Goal: ≤ 1.1.
 *
 *   npx tsx bench/bridge-cpu.ts --session both     # 3 rounds × 4 windows × 20 s, ~5 min
 */
import { machineLine, printBenchJson } from "./lib/comparison.ts";
import type { SessionKind } from "./lib/consumers.ts";
import { createBenchDatabase, postgresVersion } from "./lib/database.ts";
import { cpuMsOf, machineNote, watchProcess } from "./lib/machine.ts";
import { startLoadRig } from "./lib/rig.ts";
import { parseBenchArgs, runBench } from "./lib/run.ts";
import { median } from "./lib/stats.ts";

const PARTNERS = 100;
const SHOPS = 4;
const RATE = 1_000;

const log = (line: string) => process.stderr.write(`[bridge-cpu] ${line}\n`);

interface Window {
  round: number;
  kind: "busy" | "idle";
  session: SessionKind;
  cpuPercent: number;
  rssMeanMib: number;
  writerCpuPercent: number;
  writeRate: number;
  deliveredPerSecond: number;
}

const main = async () => {
  const args = parseBenchArgs(undefined, { session: { type: "string", default: "clean" } });
  const sessionMode = args.own.session as SessionKind | "both";
  if (!["clean", "persistent", "both"].includes(sessionMode))
    throw new Error("--session must be clean, persistent or both");
  const sessions: SessionKind[] = sessionMode === "both" ? ["clean", "persistent"] : [sessionMode];
  const rounds = args.rounds ?? (args.quick ? 1 : 3);
  const seconds = args.seconds ?? (args.quick ? 5 : 20);
  const rig = await startLoadRig({
    partners: args.quick ? 20 : PARTNERS,
    shops: SHOPS,
    serverFlags: args.serverFlags,
    session: sessions[0]!,
    createDatabase: () => createBenchDatabase(),
  });
  log("warm-up");
  await rig.write(RATE, args.quick ? 2 : 5);
  await rig.takeReceipts();

  const windows: Window[] = [];
  const run = async (round: number, kind: Window["kind"]) => {
    const w0 = cpuMsOf(rig.writer.pid);
    const watched = await watchProcess(rig.brewcast.pid, async () => {
      if (kind === "busy") return rig.write(RATE, seconds);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      return undefined;
    });
    const writerCpuPercent = ((cpuMsOf(rig.writer.pid) - w0) / (watched.seconds * 1000)) * 100;
    const commits = watched.result;
    const delivered = await rig.takeReceipts();
    const window: Window = {
      round,
      kind,
      session: rig.session,
      cpuPercent: watched.cpuPercent,
      rssMeanMib: watched.rssMeanMib,
      writerCpuPercent,
      writeRate: commits ? commits.t.length / commits.seconds : 0,
      deliveredPerSecond: delivered / watched.seconds,
    };
    log(
      `round ${round} ${kind}, ${rig.session} sessions: brewcast ${window.cpuPercent.toFixed(1)}% CPU, RSS ${window.rssMeanMib.toFixed(0)} MiB; wrote ${window.writeRate.toFixed(0)}/s (writer ${writerCpuPercent.toFixed(1)}% CPU), delivered ${window.deliveredPerSecond.toFixed(0)}/s`,
    );
    windows.push(window);
  };
  for (let r = 1; r <= rounds; r++) {
    const order: Window["kind"][] = r % 2 === 1 ? ["busy", "idle"] : ["idle", "busy"];
    for (const session of r % 2 === 1 ? sessions : [...sessions].reverse()) {
      if (rig.session !== session) await rig.resubscribe(session);
      for (const kind of order) await run(r, kind);
    }
  }

  if (sessionMode === "both") return report(windows, rounds, seconds, rig);
  const busy = windows.filter((w) => w.kind === "busy");
  const idle = windows.filter((w) => w.kind === "idle");
  const cpuBusy = median(busy.map((w) => w.cpuPercent));
  const cpuIdle = median(idle.map((w) => w.cpuPercent));
  const writeRate = median(busy.map((w) => w.writeRate));
  const scaled = median(busy.map((w) => (w.cpuPercent * RATE) / Math.max(1, w.writeRate)));
  const writerCpu = median(busy.map((w) => w.writerCpuPercent));
  const ratio = median(busy.map((w) => w.cpuPercent / w.writerCpuPercent));
  const goalMet = cpuBusy <= 25 && writeRate >= 0.95 * RATE;
  const machine = machineNote(await postgresVersion(rig.dbUrl));
  const f = (n: number) => n.toFixed(1);
  process.stdout.write(
    [
      "",
      `bridge-cpu — ${new Date().toISOString()}`,
      machineLine(machine),
      `params: ${RATE} events/s target, ${rig.partners.length} partners × ${SHOPS} shops, 1 QoS 1 subscriber each (${sessionMode} sessions), ${rounds} rounds × ${seconds} s per window`,
      "",
      "window   brewcast CPU % (median)  per round            RSS MiB  wrote/s  delivered/s  writer CPU %",
      `busy     ${f(cpuBusy).padStart(23)}  ${busy
        .map((w) => f(w.cpuPercent))
        .join(" ")
        .padEnd(
          19,
        )}  ${f(median(busy.map((w) => w.rssMeanMib))).padStart(7)}  ${writeRate.toFixed(0).padStart(7)}  ${median(
        busy.map((w) => w.deliveredPerSecond),
      )
        .toFixed(0)
        .padStart(11)}  ${f(writerCpu).padStart(12)}`,
      `idle     ${f(cpuIdle).padStart(23)}  ${idle
        .map((w) => f(w.cpuPercent))
        .join(" ")
        .padEnd(19)}  ${f(median(idle.map((w) => w.rssMeanMib))).padStart(7)}  ${"0".padStart(7)}  ${median(
        idle.map((w) => w.deliveredPerSecond),
      )
        .toFixed(0)
        .padStart(11)}  ${f(median(idle.map((w) => w.writerCpuPercent))).padStart(12)}`,
      "",
      `brewcast CPU scaled to ${RATE} events/s: ${f(scaled)}%`,
      `ratio brewcast CPU / writer CPU (busy, median of per-round ratios): ${ratio.toFixed(2)}`,
      `goal: ≤ 25% of one core at ${RATE} events/s: ${f(cpuBusy)}% at ${writeRate.toFixed(0)}/s ${goalMet ? "met" : cpuBusy <= 25 ? "NOT SHOWN (the writer did not reach the rate)" : "MISSED"}`,
      "",
      "",
    ].join("\n"),
  );
  printBenchJson("bridge-cpu", machine, {
    params: {
      rate: RATE,
      partners: rig.partners.length,
      shops: SHOPS,
      rounds,
      seconds,
      session: sessionMode,
    },
    summary: { cpuBusy, cpuIdle, scaled, writeRate, writerCpu, ratio },
    windows,
    goals: [{ label: "≤ 25% of one core at 1,000 events/s", value: cpuBusy, met: goalMet }],
  });
};

/** `--session both`: each kind's windows, and persistent / clean per round. */
const report = async (
  windows: Window[],
  rounds: number,
  seconds: number,
  rig: Awaited<ReturnType<typeof startLoadRig>>,
) => {
  const f = (n: number) => n.toFixed(1);
  const pick = (session: SessionKind, kind: Window["kind"]) =>
    windows.filter((w) => w.session === session && w.kind === kind);
  const perRound = (kind: Window["kind"], value: (w: Window) => number) =>
    median(
      pick("persistent", kind).map((w) => {
        const clean = pick("clean", kind).find((c) => c.round === w.round)!;
        return value(w) / value(clean);
      }),
    );
  const rows = (["clean", "persistent"] as const).flatMap((session) =>
    (["busy", "idle"] as const).map((kind) => {
      const ws = pick(session, kind);
      return {
        session,
        kind,
        cpu: median(ws.map((w) => w.cpuPercent)),
        rounds: ws.map((w) => Number(w.cpuPercent.toFixed(1))),
        rss: median(ws.map((w) => w.rssMeanMib)),
        wrote: median(ws.map((w) => w.writeRate)),
        delivered: median(ws.map((w) => w.deliveredPerSecond)),
        writer: median(ws.map((w) => w.writerCpuPercent)),
        perEventUs:
          kind === "busy" ? median(ws.map((w) => (w.cpuPercent * 10_000) / Math.max(1, w.writeRate))) : 0,
      };
    }),
  );
  const ratioBusy = perRound("busy", (w) => w.cpuPercent);
  const ratioPerEvent = perRound("busy", (w) => w.cpuPercent / Math.max(1, w.writeRate));
  const ratioIdle = perRound("idle", (w) => w.cpuPercent);
  const goalMet = ratioBusy <= 1.1;
  const machine = machineNote(await postgresVersion(rig.dbUrl));
  const lines = [
    "",
    `bridge-cpu — ${new Date().toISOString()}`,
    machineLine(machine),
    `params: ${RATE} events/s target, ${rig.partners.length} partners × ${SHOPS} shops, 1 QoS 1 subscriber each, clean and persistent sessions, ${rounds} rounds × ${seconds} s per window`,
    "",
    "sessions    window  brewcast CPU % (median)  per round            µs CPU/event  RSS MiB  wrote/s  delivered/s  writer CPU %",
    ...rows.map(
      (r) =>
        `${r.session.padEnd(11)} ${r.kind.padEnd(6)}  ${f(r.cpu).padStart(23)}  ${r.rounds.join(" ").padEnd(19)}  ${(r.kind === "busy" ? f(r.perEventUs) : "").padStart(12)}  ${f(r.rss).padStart(7)}  ${r.wrote.toFixed(0).padStart(7)}  ${r.delivered.toFixed(0).padStart(11)}  ${f(r.writer).padStart(12)}`,
    ),
    "",
    `persistent / clean, busy CPU (median of per-round ratios): ${ratioBusy.toFixed(3)}  goal ≤ 1.1 ${goalMet ? "met" : "MISSED"}`,
    `persistent / clean, busy CPU per event written: ${ratioPerEvent.toFixed(3)}${rows.some((r) => r.kind === "busy" && r.wrote < 0.95 * RATE) ? " (the writer fell short of the rate: read this one)" : ""}`,
    `persistent / clean, idle CPU: ${ratioIdle.toFixed(3)}`,
    "",
    "",
  ];
  process.stdout.write(lines.join("\n"));
  printBenchJson("bridge-cpu", machine, {
    params: { rate: RATE, partners: rig.partners.length, shops: SHOPS, rounds, seconds, session: "both" },
    summary: rows,
    windows,
    ratios: [
      { label: "persistent / clean, busy CPU", value: ratioBusy, goal: "≤ 1.1", met: goalMet },
      { label: "persistent / clean, busy CPU per event", value: ratioPerEvent },
      { label: "persistent / clean, idle CPU", value: ratioIdle },
    ],
    goals: [{ label: "persistent / clean busy CPU ≤ 1.1", value: ratioBusy, met: goalMet }],
  });
};

runBench(main);
