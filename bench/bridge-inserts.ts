/**
 * Insert throughput with the bridge's wake-up design (issue 4), against no
 * wake-up at all and against a per-row NOTIFY trigger, at 1 and at 16
 * writers, in the same run, interleaved (harness `runComparison`).
 *
 * Goals: doorbell / none ≥ 0.8 at 1 writer and ≥ 0.5 at 16 writers.
 *
 *   npx tsx bench/bridge-inserts.ts            # 3 rounds × 10 s per case, ~4 min
 *   npx tsx bench/bridge-inserts.ts --quick
 *
 * The writer is this process, through the real store: `createOrderStore(db)
 * .create()` on a `pg` Db (src/store/open-db.ts, a pool of writers + 1),
 * each op one order over 50 partners (4 shops each). Cases:
 * - none: commit, nothing else (the bridge finds the events by its 1 s sweep);
 * - doorbell: after each commit, `doorbell.ring(event)` (src/store/doorbell.ts
 *   createDoorbell: one NOTIFY in flight per process, outside the write
 *   transactions, rings coalesced and carrying the events), what the API's
 *   `onCommitted` does for other processes' bridges;
 * - trigger: an AFTER INSERT FOR EACH ROW trigger on order_events doing
 *   `pg_notify('brewcast_events', partner_id)` (the ids-only channel the
 *   bridge still hears) inside every write
 *   transaction (created before the case, dropped after it).
 * A brewcast process (role "all") runs throughout with its bridge LISTENing
 * and publishing whatever is written, as in production.
 */
import { createLogger } from "../src/log.ts";
import type { Db } from "../src/store/db.ts";
import { createDoorbell, LEGACY_DOORBELL_CHANNEL } from "../src/store/doorbell.ts";
import { openDb } from "../src/store/open-db.ts";
import { createOrderStore } from "../src/store/orders.ts";
import { type BenchCase, type BenchRatio, runComparison } from "./lib/comparison.ts";
import { postgresVersion } from "./lib/database.ts";
import { measureLoop } from "./lib/load.ts";
import { cpuMsOf, machineNote, nowMs } from "./lib/machine.ts";
import { startBrewcastRig } from "./lib/rig.ts";
import { onCleanup, parseBenchArgs, runBench } from "./lib/run.ts";
import { median } from "./lib/stats.ts";
import { orderItems } from "./lib/writer.ts";

const PARTNERS = 50;
const SHOPS = 4;
const WRITERS = [1, 16];

const log = (line: string) => process.stderr.write(`[bridge-inserts] ${line}\n`);

const TRIGGER_SQL = `
CREATE OR REPLACE FUNCTION bench_notify_row() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('${LEGACY_DOORBELL_CHANNEL}', NEW.partner_id);
  RETURN NEW;
END $fn$;
CREATE TRIGGER bench_notify_row AFTER INSERT ON order_events FOR EACH ROW EXECUTE FUNCTION bench_notify_row();`;

const main = async () => {
  const args = parseBenchArgs();
  const rounds = args.rounds ?? (args.quick ? 1 : 3);
  const seconds = args.seconds ?? (args.quick ? 2 : 10);

  const {
    db: bench,
    brewcast,
    partners,
  } = await startBrewcastRig({
    tag: "ins",
    partners: PARTNERS,
    shops: SHOPS,
    serverFlags: args.serverFlags,
    log,
  });
  log(`brewcast pid ${brewcast.pid}; ${PARTNERS} partners`);

  const db = await openDb({
    databaseUrl: bench.url,
    dataDir: "./data",
    log: createLogger("warn"),
    poolSize: Math.max(...WRITERS) + 1,
  });
  onCleanup(() => db.close());
  const orders = createOrderStore(db);
  let doorbellErrors = 0;
  const doorbell = createDoorbell(db, () => doorbellErrors++);
  // The same doorbell ringing a channel nobody listens to: the NOTIFYs' own cost, without
  // the bridge waking up for every commit.
  const unheardDb: Db = { ...db, notify: (_channel, payload) => db.notify("bench_unheard", payload) };
  const unheard = createDoorbell(unheardDb, () => doorbellErrors++);

  const createOrder = async (bell?: typeof doorbell) => {
    const partner = partners[Math.floor(Math.random() * partners.length)]!;
    const shopId = partner.shops[Math.floor(Math.random() * partner.shops.length)]!;
    const change = await orders.create(
      { partnerId: partner.id, shopId: null },
      { shop_id: shopId, items: orderItems() },
    );
    if (change.event) bell?.ring(change.event);
  };
  /** CPU of the brewcast process (its bridge publishing what is written), % of one core, per case. */
  const cpu = new Map<string, number[]>();
  const withCpu =
    (name: string, run: BenchCase["run"]): BenchCase["run"] =>
    async (s) => {
      const c0 = cpuMsOf(brewcast.pid);
      const t0 = nowMs();
      const m = await run(s);
      const list = cpu.get(name) ?? [];
      list.push(((cpuMsOf(brewcast.pid) - c0) / (nowMs() - t0)) * 100);
      cpu.set(name, list);
      return m;
    };

  const cases: BenchCase[] = [];
  const ratios: BenchRatio[] = [];
  for (const writers of WRITERS) {
    const none = `no wake-up, ${writers} writer${writers > 1 ? "s" : ""}`;
    const bell = `doorbell, ${writers} writer${writers > 1 ? "s" : ""}`;
    const trigger = `per-row NOTIFY trigger, ${writers} writer${writers > 1 ? "s" : ""}`;
    const silent = `doorbell, nobody listening, ${writers} writer${writers > 1 ? "s" : ""}`;
    /** Every commit rings `ringer`; its last rings flushed within the case. */
    const ringing = (name: string, ringer: typeof doorbell): BenchCase => ({
      name,
      peer: none,
      run: withCpu(name, async (s) => {
        const m = await measureLoop({ concurrency: writers, seconds: s, op: () => createOrder(ringer) });
        await ringer.flush();
        return m;
      }),
    });
    cases.push(
      {
        name: none,
        run: withCpu(none, (s) => measureLoop({ concurrency: writers, seconds: s, op: () => createOrder() })),
      },
      ringing(bell, doorbell),
      ringing(silent, unheard),
      {
        name: trigger,
        peer: none,
        run: withCpu(trigger, async (s) => {
          await db.exec(TRIGGER_SQL);
          try {
            return await measureLoop({ concurrency: writers, seconds: s, op: () => createOrder() });
          } finally {
            await db.exec("DROP TRIGGER bench_notify_row ON order_events");
          }
        }),
      },
    );
    ratios.push({
      label: `${bell} / ${none}`,
      numerator: bell,
      denominator: none,
      goal: writers === 1 ? 0.8 : 0.5,
    });
  }

  await runComparison({
    bench: "bridge-inserts",
    rounds,
    seconds,
    warmupSeconds: args.quick ? 1 : 2,
    cases,
    ratios,
    params: {
      partners: PARTNERS,
      shops: SHOPS,
      writers: WRITERS,
      path: "createOrderStore().create() on a pg pool",
    },
    machine: machineNote(await postgresVersion(bench.url)),
  });
  // Includes the warm-up run of each case.
  const cpuLines = [...cpu].map(
    ([name, values]) =>
      `${name.padEnd(44)} ${median(values).toFixed(0).padStart(4)}%  (${values.map((v) => v.toFixed(0)).join(" ")})`,
  );
  process.stdout.write(
    `brewcast process CPU (% of one core, median over runs; bridge publishing what is written):\n${cpuLines.join("\n")}\n`,
  );
  if (doorbellErrors > 0) log(`${doorbellErrors} doorbell rings failed`);
};

runBench(main);
