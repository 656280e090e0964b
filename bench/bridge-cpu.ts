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
 * ~100/s on this machine, far from 1,000). In the same run, interleaved:
 * - idle windows (no writes, the same 100 subscribers): the floor;
 * - the writer process's own CPU for the same 1,000 appends/s, as a peer:
 *   what merely writing these events through `pg` costs a Node process.
 * When the writer cannot reach 1,000/s (a loaded machine), the CPU is also
 * given scaled linearly to 1,000/s.
 */
import { cpuMsOf, median, startLoadRig, watchProcess } from "./bridge-kit.ts";
import { createBenchDatabase, machineNote, parseBenchArgs, postgresVersion, runBench } from "./harness.ts";

const PARTNERS = 100;
const SHOPS = 4;
const RATE = 1_000;

const log = (line: string) => process.stderr.write(`[bridge-cpu] ${line}\n`);

interface Window {
  round: number;
  kind: "busy" | "idle";
  cpuPercent: number;
  rssMeanMib: number;
  writerCpuPercent: number;
  writeRate: number;
  deliveredPerSecond: number;
}

const main = async () => {
  const args = parseBenchArgs();
  const rounds = args.rounds ?? (args.quick ? 1 : 3);
  const seconds = args.seconds ?? (args.quick ? 5 : 20);
  const rig = await startLoadRig({
    partners: args.quick ? 20 : PARTNERS,
    shops: SHOPS,
    serverFlags: args.serverFlags,
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
      cpuPercent: watched.cpuPercent,
      rssMeanMib: watched.rssMeanMib,
      writerCpuPercent,
      writeRate: commits ? commits.t.length / commits.seconds : 0,
      deliveredPerSecond: delivered / watched.seconds,
    };
    log(
      `round ${round} ${kind}: brewcast ${window.cpuPercent.toFixed(1)}% CPU, RSS ${window.rssMeanMib.toFixed(0)} MiB; wrote ${window.writeRate.toFixed(0)}/s (writer ${writerCpuPercent.toFixed(1)}% CPU), delivered ${window.deliveredPerSecond.toFixed(0)}/s`,
    );
    windows.push(window);
  };
  for (let r = 1; r <= rounds; r++) {
    const order: Window["kind"][] = r % 2 === 1 ? ["busy", "idle"] : ["idle", "busy"];
    for (const kind of order) await run(r, kind);
  }

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
      `machine: ${machine.cpus} × ${machine.cpuModel}, load ${machine.loadavg1} at end, node ${machine.node}, ${machine.postgres}`,
      `params: ${RATE} events/s target, ${rig.partners.length} partners × ${SHOPS} shops, 1 QoS 1 subscriber each, ${rounds} rounds × ${seconds} s per window`,
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
  process.stdout.write(
    `BENCH_JSON ${JSON.stringify({
      bench: "bridge-cpu",
      date: new Date().toISOString(),
      machine,
      params: { rate: RATE, partners: rig.partners.length, shops: SHOPS, rounds, seconds },
      summary: { cpuBusy, cpuIdle, scaled, writeRate, writerCpu, ratio },
      windows,
      goals: [{ label: "≤ 25% of one core at 1,000 events/s", value: cpuBusy, met: goalMet }],
    })}\n`,
  );
};

runBench(main);
