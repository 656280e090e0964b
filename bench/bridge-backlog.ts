/**
 * Backlog drain (issue 4): 100,000 events waiting across 100 partners
 * (1,000 each, 4 shops each), the bridge starts, one QoS 1 subscriber per
 * partner: events/s delivered, from the first receipt to the last. Two
 * cases in the same run, interleaved: the whole process (role "all", the
 * embedded Aedes), and the bridge alone (role "bridge") publishing into a
 * private Mosquitto that the subscribers read.
 *
 * Goal: ≥ 10,000 events/s (embedded); the ratio embedded / Mosquitto printed.
 *
 *   npx tsx bench/bridge-backlog.ts            # 2 rounds, ~3 min
 *   npx tsx bench/bridge-backlog.ts --quick    # 10 partners × 1,000 events, 1 round
 *
 * How the bridge is held back until the subscribers are there: the bench
 * takes the bridge's leader lock (the advisory lock of src/store/leader-lock.ts)
 * before starting brewcast, whose bridge then waits as a standby; the
 * subscribers connect (two child processes of 50); the bench releases the
 * lock and the standby takes over within its 1 s poll. Each round deletes
 * the durable cursors and starts a fresh process. The events are seeded with
 * SQL (order.created, ~300-byte snapshots, prev_shop_seq chained per shop),
 * and the partners are pinned at `normal` so the ladder does not throttle
 * them for their (deliberate) lag.
 */
import pg from "pg";
import type { BenchPartner } from "./lib/admin.ts";
import { type Kid, spawnKid } from "./lib/children.ts";
import { machineLine, printBenchJson } from "./lib/comparison.ts";
import { postgresVersion } from "./lib/database.ts";
import { cpuMsOf, machineNote, nowMs, sleep } from "./lib/machine.ts";
import { startMosquitto } from "./lib/mosquitto.ts";
import { startBrewcastRig } from "./lib/rig.ts";
import { onCleanup, parseBenchArgs, runBench } from "./lib/run.ts";
import { median } from "./lib/stats.ts";
import { setHeads } from "./seed-log.ts";

const SHOPS = 4;
const CLIENT_PROCESSES = 2;
/** `BRIDGE_LOCK_KEY` in src/store/leader-lock.ts ("brid"). */
const BRIDGE_LOCK_KEY = 0x62726964;

const log = (line: string) => process.stderr.write(`[bridge-backlog] ${line}\n`);

const SEED_SQL = `
INSERT INTO order_events (partner_id, seq, shop_id, order_id, type, occurred_at, prev_shop_seq, order_snapshot)
SELECT p.id, g, sh.shop_id, o.order_id, 'order.created', t.at, CASE WHEN g > ${SHOPS} THEN g - ${SHOPS} END,
       jsonb_build_object('id', o.order_id, 'partner_id', p.id, 'shop_id', sh.shop_id, 'status', 'created',
         'items', jsonb_build_array(jsonb_build_object('sku', 'flat-white', 'quantity', 1 + g % 3),
                                    jsonb_build_object('sku', 'butter-croissant', 'quantity', 1)),
         'created_at', t.ts, 'updated_at', t.ts, 'last_seq', g)
FROM unnest($1::text[]) p(id)
CROSS JOIN generate_series(1, $2::int) g
CROSS JOIN LATERAL (SELECT md5(p.id || ':' || g)::uuid AS order_id) o
CROSS JOIN LATERAL (SELECT 'shop-' || ((g - 1) % ${SHOPS} + 1) AS shop_id) sh
CROSS JOIN LATERAL (SELECT now() - interval '1 hour' + g * interval '1 ms' AS at) t0
CROSS JOIN LATERAL (SELECT t0.at, to_char(t0.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ts) t`;

const seed = async (url: string, partners: BenchPartner[], perPartner: number) => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const ids = partners.map((p) => p.id);
    await client.query(SEED_SQL, [ids, perPartner]);
    await setHeads(client, ids, perPartner);
    await client.query("VACUUM ANALYZE order_events");
  } finally {
    await client.end();
  }
};

interface DrainResult {
  received: number;
  expected: number;
  /** From the first receipt to the last. */
  rate: number;
  /** From the lock's release to the last receipt (includes the standby's ≤ 1 s poll and its start). */
  rateFromRelease: number;
  brewcastCpuPercent: number;
  brokerCpuPercent: number | null;
  seconds: number;
}

const main = async () => {
  const args = parseBenchArgs();
  const partnerCount = args.quick ? 10 : 100;
  const perPartner = 1_000;
  const rounds = args.rounds ?? (args.quick ? 1 : 2);
  const expected = partnerCount * perPartner;

  // Partners through the admin API on a first start; the bridge under test is a fresh start each round.
  const {
    db,
    env,
    brewcast: setup,
    partners,
  } = await startBrewcastRig({ tag: "blg", partners: partnerCount, shops: SHOPS, log });
  await setup.stop();
  await seed(db.url, partners, perPartner);
  log(`seeded ${expected} events over ${partnerCount} partners`);
  const mosquitto = await startMosquitto();
  log(`mosquitto pid ${mosquitto.pid} on ${mosquitto.port}`);

  const lock = new pg.Client({ connectionString: db.url });
  await lock.connect();
  onCleanup(() => lock.end());

  const drain = async (target: "embedded" | "mosquitto"): Promise<DrainResult> => {
    await lock.query("DELETE FROM bridge_shop_cursors");
    await lock.query("DELETE FROM bridge_cursors");
    await lock.query("SELECT pg_advisory_lock($1)", [BRIDGE_LOCK_KEY]);
    const brewcast = await spawnKid(
      "brewcast",
      target === "embedded"
        ? env
        : { ...env, BENCH_ROLE: "bridge", BREWCAST_MQTT_URL: `mqtt://127.0.0.1:${mosquitto.port}` },
      target === "embedded" ? args.serverFlags : [],
    );
    const clients: Kid[] = [];
    try {
      for (let c = 0; c < CLIENT_PROCESSES; c++) {
        const kid = await spawnKid("clients");
        clients.push(kid);
        const mine = partners.filter((_, i) => i % CLIENT_PROCESSES === c);
        await kid.call(
          "subscribe",
          mine.map((p) =>
            target === "embedded"
              ? {
                  url: `mqtt://127.0.0.1:${brewcast.info.mqtt}`,
                  username: p.credentialId,
                  password: p.secret,
                  filters: [`partners/${p.id}/shops/+/orders/+`],
                  bucket: "drain",
                }
              : {
                  url: `mqtt://127.0.0.1:${mosquitto.port}`,
                  filters: [`partners/${p.id}/shops/+/orders/+`],
                  bucket: "drain",
                },
          ),
        );
        await kid.call("reset", ["drain"]);
      }
      const cpu0 = cpuMsOf(brewcast.pid);
      const broker0 = target === "mosquitto" ? cpuMsOf(mosquitto.pid) : 0;
      const released = nowMs();
      await lock.query("SELECT pg_advisory_unlock($1)", [BRIDGE_LOCK_KEY]);
      const timeoutAt = released + 180_000;
      let counts: { count: number; firstAt: number; lastAt: number }[] = [];
      for (;;) {
        counts = await Promise.all(
          clients.map((k) => k.call<{ count: number; firstAt: number; lastAt: number }>("count", "drain")),
        );
        const total = counts.reduce((a, c) => a + c.count, 0);
        if (total >= expected || nowMs() > timeoutAt) break;
        await sleep(100);
      }
      const done = nowMs();
      const received = counts.reduce((a, c) => a + c.count, 0);
      const firstAt = Math.min(...counts.map((c) => c.firstAt));
      const lastAt = Math.max(...counts.map((c) => c.lastAt));
      const seconds = (done - released) / 1000;
      return {
        received,
        expected,
        rate: received / ((lastAt - firstAt) / 1000),
        rateFromRelease: received / ((lastAt - released) / 1000),
        brewcastCpuPercent: ((cpuMsOf(brewcast.pid) - cpu0) / (done - released)) * 100,
        brokerCpuPercent:
          target === "mosquitto" ? ((cpuMsOf(mosquitto.pid) - broker0) / (done - released)) * 100 : null,
        seconds,
      };
    } finally {
      for (const kid of clients) await kid.stop();
      await brewcast.stop();
    }
  };

  const results: { round: number; target: string; result: DrainResult }[] = [];
  for (let r = 1; r <= rounds; r++) {
    const order: ("embedded" | "mosquitto")[] =
      r % 2 === 1 ? ["embedded", "mosquitto"] : ["mosquitto", "embedded"];
    for (const target of order) {
      const result = await drain(target);
      log(
        `round ${r} ${target}: ${result.received}/${result.expected} in ${result.seconds.toFixed(1)} s, ${result.rate.toFixed(0)} events/s (first→last), ${result.rateFromRelease.toFixed(0)}/s from release; brewcast CPU ${result.brewcastCpuPercent.toFixed(0)}%${result.brokerCpuPercent === null ? "" : `, mosquitto CPU ${result.brokerCpuPercent.toFixed(0)}%`}`,
      );
      results.push({ round: r, target, result });
    }
  }
  const of = (target: string) => results.filter((x) => x.target === target).map((x) => x.result);
  const embedded = of("embedded");
  const external = of("mosquitto");
  const ratio = median(
    results
      .filter((x) => x.target === "embedded")
      .map(
        (x) =>
          x.result.rate / results.find((y) => y.target === "mosquitto" && y.round === x.round)!.result.rate,
      ),
  );
  const summary = (rs: DrainResult[]) => ({
    rate: Math.round(median(rs.map((r) => r.rate))),
    rates: rs.map((r) => Math.round(r.rate)),
    rateFromRelease: Math.round(median(rs.map((r) => r.rateFromRelease))),
    brewcastCpuPercent: Math.round(median(rs.map((r) => r.brewcastCpuPercent))),
    brokerCpuPercent:
      rs[0]?.brokerCpuPercent === null ? null : Math.round(median(rs.map((r) => r.brokerCpuPercent ?? 0))),
    complete: rs.every((r) => r.received >= r.expected),
  });
  const e = summary(embedded);
  const m = summary(external);
  const machine = machineNote(await postgresVersion(db.url));
  const goalMet = e.rate >= 10_000;
  process.stdout.write(
    [
      "",
      `bridge-backlog — ${new Date().toISOString()}`,
      machineLine(machine),
      `params: ${expected} events over ${partnerCount} partners × ${SHOPS} shops, 1 QoS 1 subscriber per partner in ${CLIENT_PROCESSES} processes, ${rounds} rounds`,
      "",
      "case                              events/s (median)  rounds          from release  brewcast CPU  broker CPU  complete",
      `embedded Aedes (role all)         ${String(e.rate).padStart(17)}  ${e.rates.join(" ").padEnd(14)}  ${String(e.rateFromRelease).padStart(12)}  ${`${e.brewcastCpuPercent}%`.padStart(12)}  ${"(in proc)".padStart(10)}  ${e.complete}`,
      `bridge → Mosquitto (role bridge)  ${String(m.rate).padStart(17)}  ${m.rates.join(" ").padEnd(14)}  ${String(m.rateFromRelease).padStart(12)}  ${`${m.brewcastCpuPercent}%`.padStart(12)}  ${`${m.brokerCpuPercent}%`.padStart(10)}  ${m.complete}`,
      "",
      `goal: embedded ≥ 10,000 events/s: ${e.rate} ${goalMet ? "met" : "MISSED"}`,
      `ratio embedded / Mosquitto (median of per-round ratios): ${ratio.toFixed(2)}`,
      "",
      "",
    ].join("\n"),
  );
  printBenchJson("bridge-backlog", machine, {
    params: { events: expected, partners: partnerCount, shops: SHOPS, rounds },
    cases: { embedded: e, mosquitto: m },
    rounds: results,
    ratio: { label: "embedded / mosquitto", value: ratio },
    goals: [{ label: "embedded ≥ 10,000 events/s", value: e.rate, met: goalMet }],
  });
};

runBench(main);
