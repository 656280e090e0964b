/**
 * The write path of the delivery benches: the product's `createOrderStore(db).create()` (one round
 * trip: the `brewcast_create_order` function of migration 0004) on a pool of its own, without
 * HTTP in front, so a 2-core machine can reach the rates these benches ask for (bench/README.md
 * has what HTTP does here). `runWriter` paces the appends; each commit's time is taken the moment
 * its round trip returned (CLOCK_MONOTONIC, comparable across processes).
 */
import type { OrderEvent } from "../../src/domain/events.ts";
import { nowMs, sleep } from "./machine.ts";

const log = (line: string) => process.stderr.write(`[writer] ${line}\n`);

const SKUS = ["latte-grande", "flat-white", "cappuccino-tall", "cold-brew", "matcha-latte"];
export const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
export const orderItems = () => [
  { sku: pick(SKUS), quantity: 1 + Math.floor(Math.random() * 3) },
  { sku: "butter-croissant", quantity: 1 },
];

export interface WriteTarget {
  id: string;
  shops: string[];
}

export interface WriteRequest {
  /** Events per second, paced; 0 = as fast as `connections` allow. */
  rate: number;
  seconds: number;
  targets: WriteTarget[];
  connections: number;
  /** brewcast mode: "inproc" = bridge.wake + doorbell (the API's onCommitted); writer mode: "doorbell"; or "none". */
  wake: "inproc" | "doorbell" | "none";
}

/** Commit times: the moment each append's round trip returned (ms, CLOCK_MONOTONIC). */
export interface Commits {
  partners: string[];
  p: number[];
  seq: number[];
  t: number[];
  /** Appends that were due but had not started when the run ended (the writer fell behind). */
  behind: number;
  failed: number;
  seconds: number;
}

export interface Appender {
  append(partnerId: string, shopId: string): Promise<OrderEvent>;
  committed(event: OrderEvent): void;
}

/** Runs appends at `rate`/s (or flat out) on up to `connections` at once, for `seconds`. */
export const runWriter = async (request: WriteRequest, appender: Appender): Promise<Commits> => {
  const partnerIndex = new Map(request.targets.map((t, i) => [t.id, i]));
  const commits: Commits = {
    partners: request.targets.map((t) => t.id),
    p: [],
    seq: [],
    t: [],
    behind: 0,
    failed: 0,
    seconds: 0,
  };
  let issued = 0;
  let inFlight = 0;
  let firstError: unknown;
  const start = nowMs();
  const end = start + request.seconds * 1000;
  const issue = () => {
    const target = request.targets[issued % request.targets.length]!;
    issued++;
    inFlight++;
    appender
      .append(target.id, pick(target.shops))
      .then((event) => {
        const t = nowMs();
        commits.p.push(partnerIndex.get(target.id)!);
        commits.seq.push(event.seq);
        commits.t.push(t);
        appender.committed(event);
      })
      .catch((error) => {
        commits.failed++;
        firstError ??= error;
      })
      .finally(() => {
        inFlight--;
        if (request.rate === 0 && nowMs() < end) issue();
      });
  };
  if (request.rate === 0) {
    for (let i = 0; i < request.connections; i++) issue();
    while (nowMs() < end) await sleep(20);
  } else {
    while (nowMs() < end) {
      const due = Math.floor(((nowMs() - start) / 1000) * request.rate);
      while (issued < due && inFlight < request.connections) issue();
      await sleep(1);
    }
    commits.behind = Math.max(0, Math.floor(request.seconds * request.rate) - issued);
  }
  while (inFlight > 0) await sleep(2);
  commits.seconds = (nowMs() - start) / 1000;
  if (firstError) log(`writer: ${commits.failed} failed, first: ${(firstError as Error).message}`);
  return commits;
};

/**
 * A product module for the brewcast child and the writer: the TypeScript source through tsx,
 * or with BENCH_BUILD=dist the compiled build (`npm run build`), which is what
 * the Docker image runs.
 */
export const productModule = <T>(name: string): Promise<T> =>
  import(process.env.BENCH_BUILD === "dist" ? `../../dist/${name}.js` : `../../src/${name}.ts`) as Promise<T>;

/** The product's order store on a pool of BENCH_WRITER_CONNECTIONS (16), each commit handed to `committed`. */
export const makeAppender = async (committed: (event: OrderEvent) => void) => {
  const { openDb } = await productModule<typeof import("../../src/store/open-db.ts")>("store/open-db");
  const { createOrderStore } =
    await productModule<typeof import("../../src/store/orders.ts")>("store/orders");
  const { createLogger } = await productModule<typeof import("../../src/log.ts")>("log");
  const connections = Number(process.env.BENCH_WRITER_CONNECTIONS ?? "16");
  const db = await openDb({
    databaseUrl: process.env.DATABASE_URL,
    dataDir: "./data",
    log: createLogger("warn"),
    poolSize: connections,
  });
  const orders = createOrderStore(db);
  const appender: Appender = {
    async append(partnerId, shopId) {
      const change = await orders.create(
        { partnerId, shopId: null },
        { shop_id: shopId, items: orderItems() },
      );
      if (!change.event) throw new Error("an order was created without its event");
      return change.event;
    },
    committed,
  };
  return { db, appender };
};
