/**
 * The cost of /metrics (issue 6): the whole process (role "all") at 1,000
 * events/s with 100 partners connected (one QoS 1 subscriber each), with
 * GET /metrics scraped every 5 s and without, windows alternating in the
 * same run (the order reverses every round). Goal: ≤ 5% more CPU and RSS.
 *
 *   npx tsx bench/ops-metrics.ts            # 3 rounds × 2 windows × 30 s, ~3.5 min
 *   npx tsx bench/ops-metrics.ts --quick
 *
 * Same rig as bench/bridge-cpu.ts (a writer process creating orders through
 * the product's order store and ringing the doorbell; subscribers in their own
 * process). CPU from /proc/<pid>/stat over each window; RSS sampled every
 * second. Besides the window ratio, which the machine's noise blurs, the
 * cost of one scrape is measured directly: CPU of the process over a burst
 * of back-to-back scrapes minus its rate just before, per scrape.
 */
import { machineLine, printBenchJson } from "./lib/comparison.ts";
import { createBenchDatabase, postgresVersion } from "./lib/database.ts";
import { cpuMsOf, machineNote, nowMs, sleep, watchProcess } from "./lib/machine.ts";
import { startLoadRig } from "./lib/rig.ts";
import { parseBenchArgs, runBench } from "./lib/run.ts";
import { median } from "./lib/stats.ts";

const PARTNERS = 100;
const SHOPS = 4;
const RATE = 1_000;
const SCRAPE_EVERY_MS = 5_000;

const log = (line: string) => process.stderr.write(`[ops-metrics] ${line}\n`);

interface Window {
  round: number;
  scraping: boolean;
  cpuPercent: number;
  rssMeanMib: number;
  writeRate: number;
  scrapes: number;
  scrapeMs: number[];
  scrapeBytes: number;
}

const main = async () => {
  const args = parseBenchArgs();
  const rounds = args.rounds ?? (args.quick ? 1 : 3);
  const seconds = args.seconds ?? (args.quick ? 10 : 30);
  const rig = await startLoadRig({
    partners: args.quick ? 20 : PARTNERS,
    shops: SHOPS,
    serverFlags: args.serverFlags,
    createDatabase: () => createBenchDatabase(),
  });
  const scrape = async () => {
    const t0 = nowMs();
    const response = await fetch(`${rig.baseUrl}/metrics`);
    const body = await response.text();
    if (response.status !== 200) throw new Error(`GET /metrics: ${response.status}`);
    return {
      ms: nowMs() - t0,
      bytes: body.length,
      series: body.split("\n").filter((l) => l && !l.startsWith("#")).length,
    };
  };
  const first = await scrape();
  log(`/metrics: ${first.bytes} bytes, ${first.series} series, ${first.ms.toFixed(1)} ms`);
  log("warm-up");
  await rig.write(RATE, args.quick ? 2 : 5);

  const windows: Window[] = [];
  const run = async (round: number, scraping: boolean) => {
    const scrapeMs: number[] = [];
    let scrapeBytes = 0;
    let stop = false;
    const scraper = (async () => {
      if (!scraping) return;
      await sleep(Math.random() * SCRAPE_EVERY_MS);
      while (!stop) {
        const s = await scrape();
        scrapeMs.push(s.ms);
        scrapeBytes = s.bytes;
        const wait = SCRAPE_EVERY_MS - s.ms;
        const until = nowMs() + wait;
        while (!stop && nowMs() < until) await sleep(50);
      }
    })();
    const watched = await watchProcess(rig.brewcast.pid, () => rig.write(RATE, seconds));
    stop = true;
    await scraper;
    const commits = watched.result;
    const w: Window = {
      round,
      scraping,
      cpuPercent: watched.cpuPercent,
      rssMeanMib: watched.rssMeanMib,
      writeRate: commits.t.length / commits.seconds,
      scrapes: scrapeMs.length,
      scrapeMs,
      scrapeBytes,
    };
    log(
      `round ${round} ${scraping ? "scraping" : "no scrape"}: ${w.cpuPercent.toFixed(1)}% CPU, RSS ${w.rssMeanMib.toFixed(1)} MiB, wrote ${w.writeRate.toFixed(0)}/s, ${w.scrapes} scrapes`,
    );
    windows.push(w);
  };
  for (let r = 1; r <= rounds; r++) {
    const order = r % 2 === 1 ? [true, false] : [false, true];
    for (const scraping of order) await run(r, scraping);
  }

  // One scrape's CPU, directly, with the writer paused (so the process's own rate is low and
  // steady): 50 back-to-back scrapes, minus the process's CPU rate over the 5 s before them.
  const direct = await (async () => {
    await sleep(2_000);
    const c0 = cpuMsOf(rig.brewcast.pid);
    const t0 = nowMs();
    await sleep(5_000);
    const c1 = cpuMsOf(rig.brewcast.pid);
    const t1 = nowMs();
    const n = 50;
    for (let i = 0; i < n; i++) await scrape();
    const c2 = cpuMsOf(rig.brewcast.pid);
    const t2 = nowMs();
    const baseRate = (c1 - c0) / (t1 - t0);
    const perScrape = (c2 - c1 - baseRate * (t2 - t1)) / n;
    const busyCpu = median(windows.filter((w) => !w.scraping).map((w) => w.cpuPercent));
    return {
      perScrapeCpuMs: perScrape,
      wallMsPerScrape: (t2 - t1) / n,
      idleCpuPercent: baseRate * 100,
      busyCpuPercent: busyCpu,
    };
  })();
  log(
    `direct: ${direct.perScrapeCpuMs.toFixed(1)} ms CPU per scrape (${direct.wallMsPerScrape.toFixed(1)} ms wall)`,
  );

  const on = windows.filter((w) => w.scraping);
  const off = windows.filter((w) => !w.scraping);
  const perRound = (key: "cpuPercent" | "rssMeanMib") =>
    median(on.map((w) => w[key] / off.find((o) => o.round === w.round)![key]));
  const cpuOverhead = perRound("cpuPercent") - 1;
  const rssOverhead = perRound("rssMeanMib") - 1;
  const directOverhead = direct.perScrapeCpuMs / SCRAPE_EVERY_MS / (direct.busyCpuPercent / 100);
  // CPU per event written: the windows' write rates differ a little on a busy machine.
  const perEvent =
    median(
      on.map((w) => {
        const o = off.find((x) => x.round === w.round)!;
        return w.cpuPercent / w.writeRate / (o.cpuPercent / o.writeRate);
      }),
    ) - 1;
  const machine = machineNote(await postgresVersion(rig.dbUrl));
  const f = (n: number) => n.toFixed(1);
  const pct = (n: number) => `${(n * 100).toFixed(1)}%`;
  const lines = [
    "",
    `ops-metrics — ${new Date().toISOString()}`,
    machineLine(machine),
    `params: ${RATE} events/s target, ${rig.partners.length} partners × ${SHOPS} shops, 1 QoS 1 subscriber each, scrape every ${SCRAPE_EVERY_MS / 1000} s, ${rounds} rounds × ${seconds} s per window; /metrics ${first.bytes} bytes, ${first.series} series`,
    "",
    "window      CPU % (median)  per round            RSS MiB  per round               wrote/s  scrapes  scrape ms p50",
  ];
  for (const [name, ws] of [
    ["scraping", on],
    ["no scrape", off],
  ] as const) {
    lines.push(
      `${name.padEnd(10)}  ${f(median(ws.map((w) => w.cpuPercent))).padStart(14)}  ${ws
        .map((w) => f(w.cpuPercent))
        .join(" ")
        .padEnd(19)}  ${f(median(ws.map((w) => w.rssMeanMib))).padStart(7)}  ${ws
        .map((w) => f(w.rssMeanMib))
        .join(" ")
        .padEnd(22)}  ${median(ws.map((w) => w.writeRate))
        .toFixed(0)
        .padStart(
          7,
        )}  ${String(ws.reduce((a, w) => a + w.scrapes, 0)).padStart(7)}  ${f(median(ws.flatMap((w) => w.scrapeMs))).padStart(13)}`,
    );
  }
  lines.push(
    "",
    `CPU overhead (median of per-round ratios − 1): ${pct(cpuOverhead)}  goal ≤ 5% ${cpuOverhead <= 0.05 ? "met" : "MISSED"}`,
    `CPU per event written, scraping / not − 1: ${pct(perEvent)}`,
    `RSS overhead (median of per-round ratios − 1): ${pct(rssOverhead)}  goal ≤ 5% ${rssOverhead <= 0.05 ? "met" : "MISSED"}`,
    `one scrape measured directly: ${f(direct.perScrapeCpuMs)} ms CPU (${f(direct.wallMsPerScrape)} ms wall) → every ${SCRAPE_EVERY_MS / 1000} s = ${pct(directOverhead)} of the process's ${f(direct.busyCpuPercent)}% CPU at load`,
    "",
    "",
  );
  process.stdout.write(lines.join("\n"));
  printBenchJson("ops-metrics", machine, {
    params: {
      rate: RATE,
      partners: rig.partners.length,
      shops: SHOPS,
      rounds,
      seconds,
      scrapeEveryMs: SCRAPE_EVERY_MS,
      metricsBytes: first.bytes,
      series: first.series,
    },
    windows,
    direct,
    ratios: [
      { label: "CPU scraping / not − 1", value: cpuOverhead, goal: "≤ 0.05", met: cpuOverhead <= 0.05 },
      { label: "RSS scraping / not − 1", value: rssOverhead, goal: "≤ 0.05", met: rssOverhead <= 0.05 },
      { label: "CPU per event, scraping / not − 1", value: perEvent },
      { label: "direct per-scrape CPU / process CPU at 5 s", value: directOverhead },
    ],
  });
};

runBench(main);
