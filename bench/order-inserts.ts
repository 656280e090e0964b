/**
 * Writing the log: `POST /v1/orders` with 16 concurrent clients spread over
 * 50 partners, and with 16 clients on one partner, against raw single-row
 * INSERTs (16 concurrent pg clients, autocommit, no trigger) into a table
 * shaped like order_events, in the same run.
 *
 * Goal (issue 2): ≥ 0.5× the raw insert rate across partners. The
 * one-partner figure is reported as it is: every write of a partner takes
 * that partner's row lock (the gapless seq), so they are serialised by design.
 *
 *   npx tsx bench/order-inserts.ts          # the full run, about 2 minutes
 *   npx tsx bench/order-inserts.ts --quick  # a smoke run
 *
 * An order through the API is one transaction: the shop check, the partner's
 * seq, the order row, the shop's last seq and the event row; the peer is
 * one INSERT of an event-sized row per order, which is the floor of "one
 * durable row per order" on this Postgres.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { type BenchPartner, createPartner } from "./lib/admin.ts";
import { spawnServer } from "./lib/children.ts";
import { type BenchCase, runComparison } from "./lib/comparison.ts";
import { postgresVersion } from "./lib/database.ts";
import { measureHttp, measureLoop } from "./lib/load.ts";
import { machineNote } from "./lib/machine.ts";
import { prepareBrewcast } from "./lib/rig.ts";
import { onCleanup, parseBenchArgs, runBench } from "./lib/run.ts";
import { orderItems, pick } from "./lib/writer.ts";

const CONCURRENCY = 16;
const PARTNERS = 50;
const SHOPS_PER_PARTNER = 4;

const log = (line: string) => process.stderr.write(`[order-inserts] ${line}\n`);

const createBenchPartner = (baseUrl: string, token: string, id: string) =>
  createPartner(baseUrl, token, { id, name: `Bench ${id}`, shops: SHOPS_PER_PARTNER });

const orderBody = (shopId: string) => JSON.stringify({ shop_id: shopId, items: orderItems() });

const main = async () => {
  const args = parseBenchArgs();
  const rounds = args.rounds ?? (args.quick ? 1 : 3);
  const seconds = args.seconds ?? (args.quick ? 2 : 10);

  const { db, adminToken, env } = await prepareBrewcast(log);
  const brewcast = await spawnServer("brewcast", env, args.serverFlags);
  log(`brewcast pid ${brewcast.pid} on ${brewcast.url}`);

  const partners: BenchPartner[] = [];
  for (let p = 1; p <= PARTNERS; p++) {
    partners.push(await createBenchPartner(brewcast.url, adminToken, `bench-p${String(p).padStart(2, "0")}`));
  }
  const solo = await createBenchPartner(brewcast.url, adminToken, "bench-solo");
  log(`created ${PARTNERS + 1} partners`);

  // The peer: a table shaped like order_events (columns, keys, indexes), no trigger, autocommit.
  const pool = new pg.Pool({ connectionString: db.url, max: CONCURRENCY });
  onCleanup(() => pool.end());
  await pool.query("CREATE TABLE bench_raw_events (LIKE order_events INCLUDING ALL)");
  const rawSeq = new Array<number>(CONCURRENCY).fill(0);
  const rawInsert = async (worker: number) => {
    const seq = ++rawSeq[worker]!;
    const partnerId = `raw-${worker}`;
    const shopId = pick(["shop-1", "shop-2", "shop-3", "shop-4"]);
    const orderId = randomUUID();
    const now = new Date().toISOString();
    const snapshot = {
      id: orderId,
      partner_id: partnerId,
      shop_id: shopId,
      status: "created",
      items: orderItems(),
      created_at: now,
      updated_at: now,
      last_seq: seq,
    };
    await pool.query(
      `INSERT INTO bench_raw_events (partner_id, seq, shop_id, order_id, type, occurred_at, prev_shop_seq, order_snapshot)
       VALUES ($1, $2, $3, $4, 'order.created', now(), NULL, $5)`,
      [partnerId, seq, shopId, orderId, JSON.stringify(snapshot)],
    );
  };

  const postOrders = (choose: () => BenchPartner) => () => {
    const partner = choose();
    return {
      method: "POST",
      path: "/v1/orders",
      headers: { authorization: `Bearer ${partner.secret}`, "content-type": "application/json" },
      body: orderBody(pick(partner.shops)),
    };
  };
  const ordersCase = (name: string, choose: () => BenchPartner): BenchCase => ({
    name,
    peer: "raw INSERT",
    run: (s) =>
      measureHttp({ url: brewcast.url, connections: CONCURRENCY, seconds: s, request: postOrders(choose) }),
  });
  const cases: BenchCase[] = [
    {
      name: "raw INSERT",
      run: (s) => measureLoop({ concurrency: CONCURRENCY, seconds: s, op: rawInsert }),
    },
    ordersCase(`orders, ${PARTNERS} partners`, () => pick(partners)),
    ordersCase("orders, 1 partner", () => solo),
  ];

  await runComparison({
    bench: "order-inserts",
    rounds,
    seconds,
    warmupSeconds: args.quick ? 1 : 2,
    cases,
    ratios: [
      {
        label: `orders, ${PARTNERS} partners / raw INSERT`,
        numerator: `orders, ${PARTNERS} partners`,
        denominator: "raw INSERT",
        goal: 0.5,
      },
      {
        label: `orders, 1 partner / orders, ${PARTNERS} partners`,
        numerator: "orders, 1 partner",
        denominator: `orders, ${PARTNERS} partners`,
      },
    ],
    params: {
      concurrency: CONCURRENCY,
      partners: PARTNERS,
      shopsPerPartner: SHOPS_PER_PARTNER,
      peer: "16 pg clients, autocommit single-row INSERT into a copy of order_events (LIKE … INCLUDING ALL)",
    },
    machine: machineNote(await postgresVersion(db.url)),
  });
};

runBench(main);
