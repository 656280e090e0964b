/**
 * Reading the log: `GET /v1/events?after=X&limit=100` and
 * `GET /v1/orders/created-history?limit=100` on a log of 1,000,000 events
 * (10 partners × 100,000), first pages and deep pages, against a bare
 * node:http server returning a real page of the same size, in the same run.
 *
 * Goals (issue 2): ≥ 0.03× bare node:http; deep/first ≥ 0.7.
 *
 *   npx tsx bench/events-read.ts            # the full run, about 4 minutes
 *   npx tsx bench/events-read.ts --quick    # a smoke run on 40,000 events
 *   npx tsx bench/events-read.ts --quick --baseline ../old-checkout   # an older commit beside it
 *
 * The log is seeded with SQL (generate_series) straight into the tables of
 * migration 0001, not through the API: 4 events per order (created,
 * accepted, preparing, ready), orders spread over 20 shops per partner,
 * ~300-byte snapshots, with partners.head_seq, shops.last_seq,
 * prev_shop_seq and the orders table consistent with the events.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { spawnBaseline, takeBaselineFlag } from "./baseline.ts";
import { type BenchPartner, createPartners, paddedShopId } from "./lib/admin.ts";
import { spawnServer } from "./lib/children.ts";
import { type BenchCase, runComparison } from "./lib/comparison.ts";
import { postgresVersion } from "./lib/database.ts";
import { type HttpRequest, measureHttp } from "./lib/load.ts";
import { machineNote } from "./lib/machine.ts";
import { prepareBrewcast } from "./lib/rig.ts";
import { onCleanup, parseBenchArgs, runBench } from "./lib/run.ts";
import { seedEventsSql, setHeads } from "./seed-log.ts";

const SHOPS_PER_PARTNER = 20;
const EVENTS_PER_ORDER = 4;
const PAGE = 100;
/** How far from either end of the log a "first" or "deep" cursor falls. */
const WINDOW = 5_000;

const log = (line: string) => process.stderr.write(`[events-read] ${line}\n`);

type Partner = BenchPartner;

const SEED_EVENTS_SQL = seedEventsSql({
  shops: SHOPS_PER_PARTNER,
  eventsPerOrder: EVENTS_PER_ORDER,
  step: "1 second",
});

const seedLog = async (url: string, partners: Partner[], perPartner: number) => {
  const started = performance.now();
  const base = new Date(Date.now() - (perPartner + 60) * 1000);
  // Loading 1M rows is faster with the secondary indexes built afterwards; their
  // definitions are read back from the catalog, so the migration stays the one source.
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const { rows: indexes } = await admin.query<{ name: string; def: string }>(
    `SELECT indexname AS name, indexdef AS def FROM pg_indexes
     WHERE schemaname = current_schema() AND tablename = 'order_events' AND indexname <> 'order_events_pkey'`,
  );
  for (const index of indexes) await admin.query(`DROP INDEX ${index.name}`);
  // Two connections (the machine has two cores), each seeding half the partners.
  const halves = [partners.filter((_, i) => i % 2 === 0), partners.filter((_, i) => i % 2 === 1)];
  await Promise.all(
    halves.map(async (half) => {
      if (half.length === 0) return;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query("SET synchronous_commit = off");
        await client.query(SEED_EVENTS_SQL, [half.map((p) => p.id), perPartner, base]);
      } finally {
        await client.end();
      }
    }),
  );
  log(
    `seeded ${partners.length * perPartner} events in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  await Promise.all(
    [indexes.filter((_, i) => i % 2 === 0), indexes.filter((_, i) => i % 2 === 1)].map(async (half) => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query("SET maintenance_work_mem = '256MB'");
        for (const index of half) await client.query(index.def);
      } finally {
        await client.end();
      }
    }),
  );
  await admin.end();
  log(`indexes rebuilt at ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await setHeads(
      client,
      partners.map((p) => p.id),
      perPartner,
    );
    await client.query(
      `INSERT INTO orders (id, partner_id, shop_id, status, items, created_at, updated_at, last_seq)
       SELECT DISTINCT ON (partner_id, order_id) order_id, partner_id, shop_id, order_snapshot->>'status',
              order_snapshot->'items', (order_snapshot->>'created_at')::timestamptz, occurred_at, seq
       FROM order_events WHERE partner_id = ANY($1::text[])
       ORDER BY partner_id, order_id, seq DESC`,
      [partners.map((p) => p.id)],
    );
    // A log already published: the bridge starts with its cursors at the head, so the
    // benchmark measures reads, not the bridge catching up on a million events.
    await client.query(
      `INSERT INTO bridge_cursors (partner_id, published_seq, occurred_at)
       SELECT e.partner_id, e.seq, e.occurred_at FROM order_events e JOIN partners p ON p.id = e.partner_id AND e.seq = p.head_seq
       WHERE p.id = ANY($1::text[])
       ON CONFLICT (partner_id) DO UPDATE SET published_seq = excluded.published_seq, occurred_at = excluded.occurred_at`,
      [partners.map((p) => p.id)],
    );
    await client.query(
      `INSERT INTO bridge_shop_cursors (partner_id, shop_id, published_seq, occurred_at)
       SELECT e.partner_id, e.shop_id, e.seq, e.occurred_at FROM order_events e
       JOIN shops s ON s.partner_id = e.partner_id AND s.id = e.shop_id AND e.seq = s.last_seq
       WHERE s.partner_id = ANY($1::text[])
       ON CONFLICT (partner_id, shop_id) DO UPDATE SET published_seq = excluded.published_seq, occurred_at = excluded.occurred_at`,
      [partners.map((p) => p.id)],
    );
    await client.query("VACUUM ANALYZE order_events");
    await client.query("VACUUM ANALYZE orders");
    await client.query("VACUUM ANALYZE partners");
    await client.query("VACUUM ANALYZE shops");
    const { rows } = await client.query<{ size: string }>(
      "SELECT pg_size_pretty(pg_total_relation_size('order_events')) AS size",
    );
    log(
      `log ready in ${((performance.now() - started) / 1000).toFixed(1)} s (order_events ${rows[0]?.size})`,
    );
  } finally {
    await client.end();
  }
};

const randomInt = (min: number, max: number) => min + Math.floor(Math.random() * (max - min));

const main = async () => {
  const baselineFlag = takeBaselineFlag();
  const args = parseBenchArgs(baselineFlag.rest);
  const partnerCount = args.quick ? 2 : 10;
  const perPartner = args.quick ? 20_000 : 100_000;
  const rounds = args.rounds ?? (args.quick ? 1 : 3);
  const seconds = args.seconds ?? (args.quick ? 2 : 8);
  const connections = 10;

  const { db, adminToken, env: serverEnv } = await prepareBrewcast(log);
  // First run: migrations, partners and credentials through the admin API. Then the
  // log is seeded with the server stopped, and the server measured is a fresh start.
  const setup = await spawnServer("brewcast", serverEnv);
  const partners = await createPartners(
    setup.url,
    adminToken,
    partnerCount,
    SHOPS_PER_PARTNER,
    "bench",
    paddedShopId,
  );
  await setup.stop();
  await seedLog(db.url, partners, perPartner);
  const brewcast = await spawnServer("brewcast", serverEnv, args.serverFlags);
  log(`brewcast pid ${brewcast.pid} on ${brewcast.url}`);
  // --baseline DIR: that checkout's brewcast on the same database, measured in the same rounds.
  const baseline = baselineFlag.dir ? await spawnBaseline(baselineFlag.dir, serverEnv) : undefined;
  if (baseline) log(`baseline brewcast (${baselineFlag.dir}) pid ${baseline.pid} on ${baseline.url}`);

  // The bare server answers with real pages of the same size.
  const auth = (p: Partner) => ({ authorization: `Bearer ${p.secret}` });
  const sample = async (route: string) => {
    const response = await fetch(`${brewcast.url}${route}`, { headers: auth(partners[0]!) });
    const body = await response.text();
    if (response.status !== 200) throw new Error(`GET ${route}: ${response.status} ${body}`);
    return body;
  };
  const mid = Math.floor(perPartner / 2);
  const eventsBody = await sample(`/v1/events?after=${mid}&limit=${PAGE}`);
  const historyBody = await sample(`/v1/orders/created-history?older_than=${mid}&limit=${PAGE}`);
  const eventsCount = (JSON.parse(eventsBody) as { events: unknown[] }).events.length;
  const historyCount = (JSON.parse(historyBody) as { orders_created_events: unknown[] }).orders_created_events
    .length;
  if (eventsCount !== PAGE || historyCount !== PAGE) {
    throw new Error(`sample pages hold ${eventsCount} events and ${historyCount} history items, not ${PAGE}`);
  }
  log(`page sizes: events ${eventsBody.length} bytes, created-history ${historyBody.length} bytes`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), "brewcast-bench-"));
  onCleanup(async () => rmSync(tmp, { recursive: true, force: true }));
  const routesFile = path.join(tmp, "routes.json");
  writeFileSync(
    routesFile,
    JSON.stringify({ "/v1/events": eventsBody, "/v1/orders/created-history": historyBody }),
  );
  const bare = await spawnServer("static", { BENCH_STATIC_ROUTES: routesFile });
  log(`bare node:http pid ${bare.pid} on ${bare.url}`);

  const anyPartner = () => partners[randomInt(0, partners.length)]!;
  const httpCase = (name: string, url: string, request: () => HttpRequest, peer?: string): BenchCase => ({
    name,
    ...(peer ? { peer } : {}),
    run: (s) => measureHttp({ url, connections, seconds: s, request }),
  });
  const events = (after: () => number) => () => {
    const p = anyPartner();
    return { method: "GET", path: `/v1/events?after=${after()}&limit=${PAGE}`, headers: auth(p) };
  };
  const history = (olderThan: () => number) => () => {
    const p = anyPartner();
    return {
      method: "GET",
      path: `/v1/orders/created-history?older_than=${olderThan()}&limit=${PAGE}`,
      headers: auth(p),
    };
  };
  // created-history holds one event in four, so a full deep page needs older_than ≥ 400.
  const cases: BenchCase[] = [
    httpCase(
      "bare events",
      bare.url,
      events(() => randomInt(0, WINDOW)),
    ),
    httpCase(
      "events first",
      brewcast.url,
      events(() => randomInt(0, WINDOW)),
      "bare events",
    ),
    httpCase(
      "events deep",
      brewcast.url,
      events(() => randomInt(perPartner - WINDOW, perPartner - PAGE)),
      "bare events",
    ),
    httpCase(
      "bare history",
      bare.url,
      history(() => randomInt(perPartner - WINDOW, perPartner + 1)),
    ),
    httpCase(
      "history first",
      brewcast.url,
      history(() => randomInt(perPartner - WINDOW, perPartner + 1)),
      "bare history",
    ),
    httpCase(
      "history deep",
      brewcast.url,
      history(() => randomInt(EVENTS_PER_ORDER * PAGE + 1, EVENTS_PER_ORDER * PAGE + WINDOW)),
      "bare history",
    ),
  ];

  const baselineCases: BenchCase[] = baseline
    ? [
        httpCase(
          "old events first",
          baseline.url,
          events(() => randomInt(0, WINDOW)),
          "bare events",
        ),
        httpCase(
          "old events deep",
          baseline.url,
          events(() => randomInt(perPartner - WINDOW, perPartner - PAGE)),
          "bare events",
        ),
        httpCase(
          "old history first",
          baseline.url,
          history(() => randomInt(perPartner - WINDOW, perPartner + 1)),
          "bare history",
        ),
        httpCase(
          "old history deep",
          baseline.url,
          history(() => randomInt(EVENTS_PER_ORDER * PAGE + 1, EVENTS_PER_ORDER * PAGE + WINDOW)),
          "bare history",
        ),
      ]
    : [];
  const baselineRatios = baseline
    ? ["events first", "events deep", "history first", "history deep"].map((name) => ({
        label: `${name} / old ${name}`,
        numerator: name,
        denominator: `old ${name}`,
      }))
    : [];
  cases.push(...baselineCases);

  await runComparison({
    bench: "events-read",
    rounds,
    seconds,
    warmupSeconds: args.quick ? 1 : 2,
    cases,
    ratios: [
      {
        label: "events first / bare events",
        numerator: "events first",
        denominator: "bare events",
        goal: 0.03,
      },
      {
        label: "events deep / bare events",
        numerator: "events deep",
        denominator: "bare events",
        goal: 0.03,
      },
      {
        label: "history first / bare history",
        numerator: "history first",
        denominator: "bare history",
        goal: 0.03,
      },
      {
        label: "history deep / bare history",
        numerator: "history deep",
        denominator: "bare history",
        goal: 0.03,
      },
      {
        label: "events deep / events first",
        numerator: "events deep",
        denominator: "events first",
        goal: 0.7,
      },
      {
        label: "history deep / history first",
        numerator: "history deep",
        denominator: "history first",
        goal: 0.7,
      },
      ...baselineRatios,
    ],
    params: {
      events: partnerCount * perPartner,
      partners: partnerCount,
      connections,
      pageLimit: PAGE,
      eventsPageBytes: eventsBody.length,
      historyPageBytes: historyBody.length,
      cursors: `first: after in [0, ${WINDOW}) / older_than in [head-${WINDOW}, head]; deep: after in [head-${WINDOW}, head-${PAGE}) / older_than in [${EVENTS_PER_ORDER * PAGE + 1}, ${EVENTS_PER_ORDER * PAGE + WINDOW})`,
      peer: "bare node:http in a child process, fixed real page per route",
      ...(baselineFlag.dir ? { baseline: baselineFlag.dir } : {}),
    },
    machine: machineNote(await postgresVersion(db.url)),
  });
};

runBench(main);
