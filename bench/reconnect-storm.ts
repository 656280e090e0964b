/**
 * A reconnect storm (issue 19): N consumers (2,000) that each missed 500 events ask for them
 * at once, paging `GET /v1/events?limit=100` from their own position, one connection each,
 * from a load generator in its own process. Measured: the time until every consumer caught
 * up (pages/s), the p99 of a single page, and `/healthz` latency probed every 20 ms during
 * the storm (from this process, whose loop is idle meanwhile). Peer, in the same run: a bare
 * node:http server handing out the same pages from memory (bench/storm-children.ts).
 *
 * Goals: ≥ 0.3× the bare server's pages/s; /healthz answered within 100 ms during the storm.
 *
 *   npm run bench:storm                          # 2,000 consumers, 3 rounds
 *   npm run bench:storm -- --quick               # 200 consumers, 1 round
 *   npm run bench:storm -- --consumers 500 --rounds 5 --profile DIR
 *   npm run bench:storm -- --baseline ../old-checkout   # an older commit's brewcast beside it
 *
 * The log (10 partners × 10,000 events, 20 shops each) is seeded with SQL as bench:events
 * seeds it; each partner has 20 backend credentials, shared by its consumers round-robin
 * (10 consumers a credential at 2,000), under the default per-credential rate limit.
 * brewcast's BREWCAST_HTTP_MAX_CONNECTIONS is raised to fit one connection per consumer.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { Client } from "undici";
import { spawnBaseline, takeBaselineFlag } from "./baseline.ts";
import {
  adminPost,
  type BenchCase,
  benchAdminToken,
  createBenchDatabase,
  forkBenchChild,
  type Measurement,
  machineNote,
  onCleanup,
  postgresVersion,
  runBench,
  runComparison,
  spawnServer,
} from "./harness.ts";
import { seedEventsSql, setHeads } from "./seed-log.ts";
import type { StormConsumer, StormLog, StormOrder, StormResult } from "./storm-children.ts";

const SHOPS = 20;
const CREDENTIALS_PER_PARTNER = 20;
const CHILDREN = fileURLToPath(new URL("./storm-children.ts", import.meta.url));

const log = (line: string) => process.stderr.write(`[reconnect-storm] ${line}\n`);

interface Partner {
  id: string;
  secrets: string[];
}

const percentile = (sorted: number[], p: number): number =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

const round1 = (value: number) => Math.round(value * 10) / 10;

const createPartners = async (url: string, token: string, count: number): Promise<Partner[]> => {
  const partners: Partner[] = [];
  for (let p = 0; p < count; p++) {
    const id = `storm-p${String(p + 1).padStart(2, "0")}`;
    await adminPost(url, token, "/partners", { id, name: `Storm partner ${p + 1}` });
    for (let s = 0; s < SHOPS; s++) {
      await adminPost(url, token, `/partners/${id}/shops`, {
        id: `shop-${String(s + 1).padStart(2, "0")}`,
        name: `Shop ${s + 1}`,
      });
    }
    const secrets: string[] = [];
    for (let c = 0; c < CREDENTIALS_PER_PARTNER; c++) {
      const credential = await adminPost(url, token, `/partners/${id}/credentials`, { kind: "backend" });
      secrets.push(credential.secret as string);
    }
    partners.push({ id, secrets });
  }
  return partners;
};

/** The log as bench:events seeds it, with the bridge's cursors at the head (nothing left to publish). */
const seedLog = async (url: string, partners: Partner[], perPartner: number) => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const ids = partners.map((p) => p.id);
    await client.query(seedEventsSql({ shops: SHOPS, eventsPerOrder: 4, step: "1 second" }), [
      ids,
      perPartner,
      new Date(Date.now() - (perPartner + 60) * 1000),
    ]);
    await setHeads(client, ids, perPartner);
    await client.query(
      `INSERT INTO bridge_cursors (partner_id, published_seq, occurred_at)
       SELECT e.partner_id, e.seq, e.occurred_at FROM order_events e JOIN partners p ON p.id = e.partner_id AND e.seq = p.head_seq
       WHERE p.id = ANY($1::text[])
       ON CONFLICT (partner_id) DO UPDATE SET published_seq = excluded.published_seq, occurred_at = excluded.occurred_at`,
      [ids],
    );
    await client.query(
      `INSERT INTO bridge_shop_cursors (partner_id, shop_id, published_seq, occurred_at)
       SELECT e.partner_id, e.shop_id, e.seq, e.occurred_at FROM order_events e
       JOIN shops s ON s.partner_id = e.partner_id AND s.id = e.shop_id AND e.seq = s.last_seq
       WHERE s.partner_id = ANY($1::text[])
       ON CONFLICT (partner_id, shop_id) DO UPDATE SET published_seq = excluded.published_seq, occurred_at = excluded.occurred_at`,
      [ids],
    );
    await client.query("VACUUM ANALYZE order_events");
    await client.query("VACUUM ANALYZE partners");
    await client.query("VACUUM ANALYZE shops");
  } finally {
    await client.end();
  }
};

/** Every event of each partner, as brewcast answers them, for the bare server. */
const readLogs = async (url: string, partners: Partner[]): Promise<StormLog[]> => {
  const logs: StormLog[] = [];
  for (const partner of partners) {
    const events: string[] = [];
    let epoch = "";
    let head = 0;
    for (let after = 0; ; ) {
      const response = await fetch(`${url}/v1/events?after=${after}&limit=1000`, {
        headers: { authorization: `Bearer ${partner.secrets[0]}` },
      });
      if (response.status !== 200) throw new Error(`GET /v1/events: ${response.status}`);
      const page = (await response.json()) as { events: { seq: number }[]; head_seq: number; epoch: string };
      ({ epoch, head_seq: head } = page);
      for (const event of page.events) events.push(JSON.stringify(event));
      if (page.events.length === 0) break;
      after = page.events.at(-1)!.seq;
    }
    if (events.length !== head)
      throw new Error(`partner ${partner.id}: ${events.length} events, head ${head}`);
    logs.push({ secrets: partner.secrets, epoch, head, events });
  }
  return logs;
};

/** `/healthz` every `everyMs` until stopped, on one keep-alive connection: each answer's latency. */
const probeHealth = (url: string, everyMs: number) => {
  const client = new Client(url, { pipelining: 1 });
  const latencies: number[] = [];
  let failures = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      try {
        const { statusCode, body } = await client.request({ method: "GET", path: "/healthz" });
        await body.dump();
        if (statusCode === 200) latencies.push(performance.now() - started);
        else failures++;
      } catch {
        failures++;
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await client.close();
      return { latencies: latencies.sort((a, b) => a - b), failures };
    },
  };
};

interface StormFigures {
  name: string;
  seconds: number;
  pages: number;
  limited: number;
  failed: number;
  pageP99: number;
  healthP50: number;
  healthP99: number;
  healthMax: number;
  healthProbes: number;
  healthFailures: number;
}

const main = async () => {
  const baselineFlag = takeBaselineFlag();
  const { values } = parseArgs({
    args: baselineFlag.rest,
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      consumers: { type: "string" },
      missed: { type: "string", default: "500" },
      profile: { type: "string" },
    },
  });
  const quick = values.quick ?? false;
  const consumerCount = Number(values.consumers ?? (quick ? 200 : 2_000));
  const missed = Number(values.missed);
  const limit = 100;
  const pages = Math.ceil(missed / limit);
  const rounds = Number(values.rounds ?? (quick ? 1 : 3));
  const partnerCount = quick ? 2 : 10;
  const perPartner = 10_000;

  const db = await createBenchDatabase();
  onCleanup(() => db.drop());
  log(`database ${db.name}`);
  const adminToken = benchAdminToken();
  const serverEnv = {
    DATABASE_URL: db.url,
    BREWCAST_ADMIN_TOKEN: adminToken,
    LOG_LEVEL: "warn",
    BREWCAST_HTTP_MAX_CONNECTIONS: String(consumerCount + 100),
  };
  const setup = await spawnServer("brewcast", serverEnv);
  const partners = await createPartners(setup.url, adminToken, partnerCount);
  await setup.stop();
  await seedLog(db.url, partners, perPartner);
  const brewcast = await spawnServer(
    "brewcast",
    serverEnv,
    values.profile ? ["--cpu-prof", `--cpu-prof-dir=${values.profile}`] : [],
  );
  log(`brewcast pid ${brewcast.pid} on ${brewcast.url}`);
  // --baseline DIR: that checkout's brewcast on the same database, stormed in the same rounds.
  const baseline = baselineFlag.dir ? await spawnBaseline(baselineFlag.dir, serverEnv) : undefined;
  if (baseline) log(`baseline brewcast (${baselineFlag.dir}) pid ${baseline.pid} on ${baseline.url}`);

  const tmp = mkdtempSync(path.join(os.tmpdir(), "brewcast-storm-"));
  onCleanup(async () => rmSync(tmp, { recursive: true, force: true }));
  const pagesFile = path.join(tmp, "logs.json");
  writeFileSync(pagesFile, JSON.stringify(await readLogs(brewcast.url, partners)));
  const bare = await forkBenchChild(CHILDREN, ["--child", "pages"], {
    label: "bare pages server",
    env: { BENCH_STORM_PAGES: pagesFile },
    killAfterMs: 5_000,
  });
  onCleanup(() => bare.stop());
  const bareUrl = `http://127.0.0.1:${(bare.ready as { port: number }).port}`;
  log(`bare node:http pid ${bare.child.pid} on ${bareUrl}`);
  const load = await forkBenchChild(CHILDREN, ["--child", "load"], {
    label: "load generator",
    killAfterMs: 5_000,
  });
  onCleanup(() => load.stop());

  const storm = (order: StormOrder) =>
    new Promise<StormResult>((resolve, reject) => {
      load.child.once("message", (message) => {
        const { result, error } = message as { result?: StormResult; error?: string };
        if (result) resolve(result);
        else reject(new Error(`load generator: ${error}`));
      });
      load.child.send(order);
    });

  // Each consumer its own position: somewhere in the log with `missed` events after it.
  const consumers = (): StormConsumer[] =>
    Array.from({ length: consumerCount }, (_, i) => {
      const partner = partners[i % partners.length]!;
      const secret = partner.secrets[Math.floor(i / partners.length) % partner.secrets.length]!;
      return { secret, from: Math.floor(Math.random() * (perPartner - missed + 1)) };
    });

  const figures: StormFigures[] = [];
  const stormCase = (name: string, url: string, peer?: string): BenchCase => ({
    name,
    ...(peer ? { peer } : {}),
    async run(): Promise<Measurement> {
      const probe = probeHealth(url, 20);
      const result = await storm({ url, consumers: consumers(), pages, limit });
      const health = await probe.stop();
      const seconds = result.ms / 1_000;
      figures.push({
        name,
        seconds: Number(seconds.toFixed(2)),
        pages: result.pages,
        limited: result.limited,
        failed: result.failed,
        pageP99: round1(percentile(result.latencies, 99)),
        healthP50: round1(percentile(health.latencies, 50)),
        healthP99: round1(percentile(health.latencies, 99)),
        healthMax: round1(health.latencies.at(-1) ?? Number.NaN),
        healthProbes: health.latencies.length,
        healthFailures: health.failures,
      });
      log(
        `${name}: ${result.pages} pages in ${seconds.toFixed(1)} s, ${result.limited} × 429, ${result.failed} failed, ${result.checked} checked; healthz p99 ${round1(percentile(health.latencies, 99))} ms max ${round1(health.latencies.at(-1) ?? Number.NaN)} ms`,
      );
      return {
        rate: result.pages / seconds,
        unit: "req/s",
        latencyMs: {
          p50: round1(percentile(result.latencies, 50)),
          p90: round1(percentile(result.latencies, 90)),
          p99: round1(percentile(result.latencies, 99)),
          max: round1(result.latencies.at(-1) ?? Number.NaN),
        },
        ok: result.pages,
        failed: result.failed,
        seconds,
      };
    },
  });

  await runComparison({
    bench: "reconnect-storm",
    rounds,
    seconds: 0,
    warmupSeconds: 1,
    cases: [
      stormCase("bare storm", bareUrl),
      stormCase("brewcast storm", brewcast.url, "bare storm"),
      ...(baseline ? [stormCase("old brewcast storm", baseline.url, "bare storm")] : []),
    ],
    ratios: [
      {
        label: "brewcast / bare (pages/s)",
        numerator: "brewcast storm",
        denominator: "bare storm",
        goal: 0.3,
      },
      ...(baseline
        ? [
            {
              label: "brewcast / old brewcast",
              numerator: "brewcast storm",
              denominator: "old brewcast storm",
            },
          ]
        : []),
    ],
    params: {
      consumers: consumerCount,
      partners: partnerCount,
      eventsPerPartner: perPartner,
      credentialsPerPartner: CREDENTIALS_PER_PARTNER,
      missed,
      pageLimit: limit,
      pagesPerConsumer: pages,
      peer: "bare node:http child answering the same pages from memory",
      ...(baselineFlag.dir ? { baseline: baselineFlag.dir } : {}),
    },
    machine: machineNote(await postgresVersion(db.url)),
    details: () => {
      const measured = figures.slice(baseline ? 3 : 2); // the first ones are the warm-up
      const lines = [
        "",
        "storm                     catch-up s   pages   429s  failed  page p99 ms  healthz p50/p99/max ms (probes)",
        ...measured.map(
          (f) =>
            `${f.name.padEnd(24)} ${String(f.seconds).padStart(10)} ${String(f.pages).padStart(7)} ${String(f.limited).padStart(6)} ${String(f.failed).padStart(7)} ${String(f.pageP99).padStart(12)}  ${f.healthP50}/${f.healthP99}/${f.healthMax} (${f.healthProbes}${f.healthFailures ? `, ${f.healthFailures} failed` : ""})`,
        ),
        `healthz within 100 ms during brewcast's storms (max ≤ 100): ${measured.filter((f) => f.name === "brewcast storm").every((f) => f.healthMax <= 100) ? "met" : "MISSED"}`,
      ];
      return { text: lines.join("\n"), json: measured };
    },
  });
};

runBench(main);
