/**
 * Consumer catch-up: a consumer was offline while 100,000 events were
 * created; how fast does it hand them all to its handler and go live?
 * The SDK (REST pages of 1,000 read one page ahead, MQTT session resumed)
 * against naive REST paging with `limit=100` (one request at a time), in
 * the same run, interleaved.
 *
 * Goal (issue 5): the SDK catches up at ≥ 10,000 events/s. Also reported:
 * the time from (re)connect to live.
 *
 *   npx tsx bench/consumer-catchup.ts            # 100,000 events, 3 rounds (~3 min)
 *   npx tsx bench/consumer-catchup.ts --quick    # 20,000 events, 1 round
 *
 * The server is `brewcast start` in a child process on a fresh Postgres
 * database; the consumer runs in this process. The log is seeded with SQL
 * (generate_series) into the migration-0001 tables: 4 events per order, 20
 * shops, ~300-byte snapshots, prev_shop_seq chained per shop, head_seq and
 * last_seq consistent. The bridge then publishes the whole log, so the
 * two resumed persistent sessions are measured once each before the rounds:
 * one subscribed at QoS 1 (its session is a position in the log: on resume
 * the broker replays every event after it, alongside the REST catch-up;
 * issue 15 removed the capped offline queue of copies) and one at QoS 0
 * (nothing replayed: at most once). The interleaved
 * rounds then compare a fresh-session SDK consumer with naive paging.
 */
import pg from "pg";
import { createConsumer, createMemoryStore } from "../src/client/index.ts";
import { createPartner, paddedShopId, pinNormal } from "./lib/admin.ts";
import { spawnServer } from "./lib/children.ts";
import { type BenchCase, type Measurement, runComparison } from "./lib/comparison.ts";
import { postgresVersion } from "./lib/database.ts";
import { machineNote } from "./lib/machine.ts";
import { freePort } from "./lib/net.ts";
import { prepareBrewcast } from "./lib/rig.ts";
import { parseBenchArgs, runBench } from "./lib/run.ts";
import { percentile } from "./lib/stats.ts";
import { seedEventsSql, setHeads } from "./seed-log.ts";

const SHOPS = 20;
const EVENTS_PER_ORDER = 4;
const NAIVE_PAGE = 100;

const log = (line: string) => process.stderr.write(`[consumer-catchup] ${line}\n`);

const SEED_EVENTS_SQL = seedEventsSql({
  shops: SHOPS,
  eventsPerOrder: EVENTS_PER_ORDER,
  step: "1 millisecond",
});

const seedLog = async (url: string, partnerId: string, events: number) => {
  const started = performance.now();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query("SET synchronous_commit = off");
    await client.query("BEGIN");
    await client.query(SEED_EVENTS_SQL, [[partnerId], events, new Date(Date.now() - events - 60_000)]);
    await setHeads(client, [partnerId], events);
    await client.query("COMMIT");
    // Ring the bridge (its doorbell is a NOTIFY on this channel; the 1 s sweep would find it too).
    await client.query("VACUUM ANALYZE order_events");
  } finally {
    await client.end();
  }
  log(`seeded ${events} events in ${((performance.now() - started) / 1000).toFixed(1)} s`);
};

interface Health {
  head_seq: number;
  published_seq: number;
}

const waitForBridge = async (baseUrl: string, token: string, partnerId: string, seq: number) => {
  const started = performance.now();
  for (;;) {
    const response = await fetch(`${baseUrl}/admin/v1/partners/${partnerId}/health`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const health = (await response.json()) as Health;
    if (health.published_seq >= seq) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const seconds = (performance.now() - started) / 1000;
  log(`bridge published the log in ${seconds.toFixed(1)} s (${Math.round(seq / seconds)} events/s)`);
};

const quantile = (sorted: number[], q: number) => (sorted.length === 0 ? 0 : percentile(sorted, q));

const latencies = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const r = (v: number) => Number(v.toFixed(2));
  return {
    p50: r(quantile(sorted, 0.5)),
    p90: r(quantile(sorted, 0.9)),
    p99: r(quantile(sorted, 0.99)),
    max: r(sorted.at(-1) ?? 0),
  };
};

const main = async () => {
  const args = parseBenchArgs();
  const events = args.quick ? 20_000 : 100_000;
  const rounds = args.rounds ?? (args.quick ? 1 : 3);

  const { db, adminToken, env } = await prepareBrewcast(log);
  const mqttPort = await freePort();
  const brewcast = await spawnServer(
    "brewcast",
    { ...env, BREWCAST_MQTT_PORT: String(mqttPort) },
    args.serverFlags,
  );
  const mqttUrl = `mqtt://127.0.0.1:${mqttPort}`;
  log(`brewcast pid ${brewcast.pid} on ${brewcast.url}, MQTT ${mqttUrl}`);

  const partnerId = "bench-consumer";
  const partner = await createPartner(brewcast.url, adminToken, {
    id: partnerId,
    name: "Bench consumer",
    shops: SHOPS,
    shopId: paddedShopId,
  });
  const { credentialId, secret } = partner;
  // The partner monitor would throttle a partner 100,000 events behind (the degradation
  // ladder); this bench measures the consumer, so the partner stays pinned at normal.
  await pinNormal(brewcast.url, adminToken, [partner], "bench: consumer catch-up measures the consumer");

  const consumerFor = (name: string, qos: 0 | 1 = 1) =>
    createConsumer({
      apiUrl: brewcast.url,
      mqttUrl,
      credentialId,
      secret,
      partner: partnerId,
      name,
      store: createMemoryStore(),
      qos,
      // One consumer timed alone: no fleet to spread (jitterMs would add a random start delay).
      jitterMs: 0,
    });

  // The consumers that go offline: their persistent sessions exist before the events do.
  for (const [name, qos] of [
    ["offline-qos1", 1],
    ["offline-qos0", 0],
  ] as const) {
    const consumer = consumerFor(name, qos);
    const live = new Promise<void>((resolve) => consumer.once("live", () => resolve()));
    const done = consumer.run(() => undefined);
    await live;
    await consumer.stop();
    await done;
    log(`persistent session '${name}' (QoS ${qos}) created; consumer stopped`);
  }
  await seedLog(db.url, partnerId, events);
  await waitForBridge(brewcast.url, adminToken, partnerId, events);

  interface CatchUp {
    run: string;
    sessionPresent: boolean;
    eventsPerSecond: number;
    startToLiveMs: number;
    connectToLiveMs: number;
    per100Ms: number[];
  }
  /** Runs one consumer from position 0 until live; every event must be handed out once. */
  const catchUp = async (name: string, qos: 0 | 1): Promise<CatchUp> => {
    const consumer = consumerFor(name, qos);
    let handled = 0;
    const per100Ms: number[] = [];
    let last = performance.now();
    let sessionPresent = false;
    let connectedAt = 0;
    consumer.once("connected", (c) => {
      sessionPresent = c.sessionPresent;
      connectedAt = performance.now();
    });
    const started = performance.now();
    const live = new Promise<number>((resolve) => consumer.once("live", () => resolve(performance.now())));
    const done = consumer.run(() => {
      handled++;
      if (handled % NAIVE_PAGE === 0) {
        const now = performance.now();
        per100Ms.push(now - last);
        last = now;
      }
    });
    const liveAt = await live;
    await consumer.stop();
    await done;
    if (handled !== events) throw new Error(`${name}: the SDK handed out ${handled} events, not ${events}`);
    return {
      run: name,
      sessionPresent,
      eventsPerSecond: Math.round(handled / ((liveAt - started) / 1000)),
      startToLiveMs: Math.round(liveAt - started),
      connectToLiveMs: Math.round(liveAt - connectedAt),
      per100Ms,
    };
  };

  // Single shots: what a session missed is replayed once.
  const resumed: Omit<CatchUp, "per100Ms">[] = [];
  for (const [name, qos] of [
    ["offline-qos1", 1],
    ["offline-qos0", 0],
  ] as const) {
    const { per100Ms: _, ...result } = await catchUp(name, qos);
    resumed.push(result);
    log(`resumed session ${name}: ${JSON.stringify(result)}`);
  }

  const fresh: Omit<CatchUp, "per100Ms">[] = [];
  let sdkRun = 0;
  const sdkCase: BenchCase = {
    name: "sdk catch-up",
    peer: "naive REST limit=100",
    async run() {
      sdkRun++;
      const { per100Ms, ...result } = await catchUp(`fresh-${sdkRun}`, 1);
      fresh.push(result);
      return {
        rate: result.eventsPerSecond,
        unit: "ops/s",
        latencyMs: latencies(per100Ms),
        ok: events,
        failed: 0,
        seconds: result.startToLiveMs / 1000,
      } satisfies Measurement;
    },
  };

  const naiveCase: BenchCase = {
    name: "naive REST limit=100",
    async run() {
      const started = performance.now();
      const pageMs: number[] = [];
      let after = 0;
      let handled = 0;
      for (;;) {
        const t0 = performance.now();
        const response = await fetch(`${brewcast.url}/v1/events?after=${after}&limit=${NAIVE_PAGE}`, {
          headers: { authorization: `Bearer ${secret}` },
        });
        if (response.status !== 200) throw new Error(`GET /v1/events: ${response.status}`);
        const page = (await response.json()) as { events: { seq: number }[]; head_seq: number };
        pageMs.push(performance.now() - t0);
        for (const event of page.events) {
          handled++;
          after = event.seq;
        }
        if (page.events.length < NAIVE_PAGE || after >= page.head_seq) break;
      }
      if (handled !== events) throw new Error(`naive paging read ${handled} events, not ${events}`);
      const seconds = (performance.now() - started) / 1000;
      return {
        rate: handled / seconds,
        unit: "ops/s",
        latencyMs: latencies(pageMs),
        ok: handled,
        failed: 0,
        seconds,
      } satisfies Measurement;
    },
  };

  await runComparison({
    bench: "consumer-catchup",
    rounds,
    seconds: 0,
    cases: [sdkCase, naiveCase],
    ratios: [
      {
        label: "sdk catch-up / naive REST limit=100",
        numerator: "sdk catch-up",
        denominator: "naive REST limit=100",
      },
    ],
    params: {
      events,
      shops: SHOPS,
      unit: "ops/s = events handed to the handler per second",
      sdk: "fresh session (QoS 1) each round, REST pages of 1000 with 2 in flight, memory store, no-op handler; rate = events / (run() → live)",
      naive: "GET /v1/events?after=&limit=100, one request at a time",
      latency: "per 100 events (sdk) / per page of 100 (naive)",
      goal: "sdk ≥ 10,000 events/s",
    },
    machine: machineNote(await postgresVersion(db.url)),
  });
  process.stdout.write("\nresumed persistent sessions (single shots, before the rounds):\n");
  for (const r of resumed) process.stdout.write(`  ${JSON.stringify(r)}\n`);
  process.stdout.write("fresh sessions (the rounds above):\n");
  for (const r of fresh) process.stdout.write(`  ${JSON.stringify(r)}\n`);
  process.stdout.write(`BENCH_TO_LIVE ${JSON.stringify({ resumed, fresh })}\n`);
};

runBench(main);
