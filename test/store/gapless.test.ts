/**
 * Guarantees 1 and 3 of DESIGN.md under load: per partner, seq is gapless
 * and strictly increasing in commit order, and prev_shop_seq links each
 * shop's events. Concurrent writers go through the real HTTP app while a
 * reader per partner tails GET /v1/events as fast as it can.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OrderEvent } from "../../src/domain/events.ts";
import type { Order, OrderStatus } from "../../src/domain/orders.ts";
import { allocateSeq, appendEvent } from "../../src/store/event-log.ts";
import { type SeededPartner, seedPartner } from "../support/fixtures.ts";
import { fetchJson, listenApp } from "../support/http.ts";
import { bearer, createTestApp, type TestApp } from "../support/test-app.ts";
import { AVAILABLE_ADAPTERS } from "../support/test-db.ts";
import { gate, waitFor } from "../support/wait.ts";

/**
 * The full load on Postgres (8 writers × 3 partners × 300 orders). PGlite
 * runs one transaction at a time inside this process, so its writers cannot
 * really overlap and a full-size run only costs time: it gets a smaller run
 * of the same test (3 writers × 3 partners × 120 orders).
 */
const LOAD = {
  pg: { partners: 3, writers: 8, orders: 300 },
  pglite: { partners: 3, writers: 3, orders: 120 },
} as const;

const PAGE = 1000;

interface EventsPage {
  events: OrderEvent[];
  head_seq: number;
  epoch: string;
}

const NEXT: Record<OrderStatus, OrderStatus | undefined> = {
  created: "accepted",
  accepted: "preparing",
  preparing: "ready",
  ready: "picked_up",
  picked_up: undefined,
  cancelled: undefined,
};

/** A small deterministic PRNG, so a failing run can be replayed with the same mix. */
const prng = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
  return seed / 0x7fffffff;
};

interface Tail {
  events: OrderEvent[];
  last: number;
  lastHead: number;
  polls: number;
  /** Set by the test once every writer of this partner has finished. */
  writersDone: boolean;
  done: Promise<void>;
  stop(): void;
}

/**
 * Tails the feed from 0 with the given credential. Throws as soon as it sees
 * a seq that does not follow the previous one (a skip or a reordering), or a
 * page whose head is not the last event it returned.
 */
const startTail = (base: string, secret: string, options: { shopScoped?: boolean } = {}): Tail => {
  let stopped = false;
  const tail: Tail = {
    events: [],
    last: 0,
    lastHead: 0,
    polls: 0,
    writersDone: false,
    done: Promise.resolve(),
    stop: () => {
      stopped = true;
    },
  };
  // A shop-scoped reader sees a subsequence of the partner's seqs; it follows prev_shop_seq instead.
  let lastOfShop: number | null = null;
  tail.done = (async () => {
    while (!stopped) {
      const finished = tail.writersDone;
      const response = await fetchJson<EventsPage>(`${base}/v1/events?after=${tail.last}&limit=${PAGE}`, {
        headers: bearer(secret),
      });
      if (response.status !== 200) throw new Error(`GET /v1/events: ${response.status}`);
      tail.polls++;
      const page = response.body;
      for (const event of page.events) {
        if (options.shopScoped) {
          if (event.seq <= tail.last || event.prev_shop_seq !== lastOfShop) {
            throw new Error(
              `shop reader saw seq ${event.seq} with prev_shop_seq ${event.prev_shop_seq} after seq ${tail.last}`,
            );
          }
          lastOfShop = event.seq;
        } else if (event.seq !== tail.last + 1) {
          throw new Error(`reader saw seq ${event.seq} right after seq ${tail.last}`);
        }
        tail.events.push(event);
        tail.last = event.seq;
      }
      // Head and events are read in one snapshot: a short page must end exactly at the head.
      if (page.events.length < PAGE && tail.last !== page.head_seq) {
        throw new Error(`short page ended at seq ${tail.last} but head_seq is ${page.head_seq}`);
      }
      tail.lastHead = page.head_seq;
      if (finished && tail.last === page.head_seq) return;
    }
  })();
  return tail;
};

interface WriterCount {
  events: number;
}

/** Set when the test has failed, so writers and waits stop instead of running on into the teardown. */
interface Abort {
  aborted: boolean;
}

/** Creates `quota` orders, and after each one moves a random order of its own one step on. */
const runWriter = async (
  base: string,
  partner: SeededPartner,
  writer: number,
  quota: number,
  count: WriterCount,
  abort: Abort,
): Promise<void> => {
  const random = prng(writer * 7919 + quota);
  const open: { id: string; status: OrderStatus }[] = [];
  for (let i = 0; i < quota && !abort.aborted; i++) {
    const shopId = partner.shops[(i + writer) % partner.shops.length]!;
    const created = await fetchJson<Order>(`${base}/v1/orders`, {
      method: "POST",
      headers: bearer(partner.backend.secret),
      body: { shop_id: shopId, items: [{ sku: `sku-${writer}-${i}`, quantity: 1 + (i % 5) }] },
    });
    if (created.status !== 201) throw new Error(`POST /v1/orders: ${created.status}`);
    count.events++;
    open.push({ id: created.body.id, status: "created" });
    if (open.length === 0 || random() < 0.2) continue;
    const index = Math.floor(random() * open.length);
    const order = open[index]!;
    const status = random() < 0.1 ? "cancelled" : NEXT[order.status]!;
    const changed = await fetchJson<Order>(`${base}/v1/orders/${order.id}`, {
      method: "PATCH",
      headers: bearer(partner.backend.secret),
      body: { status },
    });
    if (changed.status !== 200) throw new Error(`PATCH /v1/orders/${order.id}: ${changed.status}`);
    count.events++;
    order.status = status;
    if (NEXT[status] === undefined) open.splice(index, 1);
  }
};

/** The seqs of one partner's log are exactly 1..n, and prev_shop_seq chains each shop with no break. */
const assertLog = (events: OrderEvent[], partnerId: string, expected: number) => {
  expect(events.map((e) => e.seq)).toEqual(Array.from({ length: expected }, (_, i) => i + 1));
  const lastOfShop = new Map<string, number>();
  const statusOf = new Map<string, OrderStatus>();
  for (const event of events) {
    expect(event.partner_id).toBe(partnerId);
    expect(event.prev_shop_seq).toBe(lastOfShop.get(event.shop_id) ?? null);
    lastOfShop.set(event.shop_id, event.seq);
    expect(event.order.last_seq).toBe(event.seq);
    const before = statusOf.get(event.order_id);
    if (event.type === "order.created") {
      expect(before).toBeUndefined();
      expect(event.order.status).toBe("created");
    } else {
      expect(before).toBeDefined();
      expect([NEXT[before!], "cancelled"]).toContain(event.order.status);
    }
    statusOf.set(event.order_id, event.order.status);
  }
};

describe.each(AVAILABLE_ADAPTERS)("gapless seq under concurrent writers (%s)", (kind) => {
  let t: TestApp;
  let base: string;
  beforeAll(async () => {
    t = await createTestApp(kind);
    base = await listenApp(t.app);
  });
  afterAll(async () => t?.close());

  it("readers never see seq N+1 before N; every partner ends at exactly 1..N with prev_shop_seq unbroken", async () => {
    const load = LOAD[kind];
    const partners: SeededPartner[] = [];
    for (let i = 0; i < load.partners; i++) partners.push(await seedPartner(t.db, { shops: 3 }));
    const counts = partners.map(() => ({ events: 0 }));
    const abort: Abort = { aborted: false };
    const tails = partners.map((p) => startTail(base, p.backend.secret));
    // One shop-scoped device reader: it must see its shop's events linked by prev_shop_seq.
    const shopTail = startTail(base, partners[0]!.devices[0]!.secret, { shopScoped: true });
    const allTails = [...tails, shopTail];
    const stopAll = () => {
      for (const tail of allTails) tail.stop();
    };
    const quota = (writer: number) =>
      Math.floor(load.orders / load.writers) + (writer < load.orders % load.writers ? 1 : 0);

    try {
      const writers = partners.map((partner, p) =>
        Promise.all(
          Array.from({ length: load.writers }, (_, w) =>
            runWriter(base, partner, w, quota(w), counts[p]!, abort),
          ),
        ).then(() => {
          tails[p]!.writersDone = true;
        }),
      );
      const held =
        kind === "pg" ? holdOneTransactionOpen(t, base, partners[0]!, tails[0]!, abort) : undefined;
      // A tail that throws must fail the test at once, not after the writers finish.
      await Promise.race([
        Promise.all([...writers, held]),
        Promise.all(allTails.map((tail) => tail.done)).then(() => {
          throw new Error("a reader stopped before the writers finished");
        }),
      ]);
      shopTail.writersDone = true;
      await Promise.all(allTails.map((tail) => tail.done));
    } catch (error) {
      abort.aborted = true;
      throw error;
    } finally {
      stopAll();
    }

    for (const [p, partner] of partners.entries()) {
      const extra = p === 0 && kind === "pg" ? 2 : 0; // the held transaction's event and the request it blocked
      const expected = counts[p]!.events + extra;
      assertLog(tails[p]!.events, partner.id, expected);
      const [row] = await t.db.query<{ head_seq: number; n: number }>(
        `SELECT p.head_seq, (SELECT count(*)::int FROM order_events e WHERE e.partner_id = p.id) AS n
           FROM partners p WHERE p.id = $1`,
        [partner.id],
      );
      expect(row).toEqual({ head_seq: expected, n: expected });
    }
    const shopEvents = tails[0]!.events.filter((e) => e.shop_id === partners[0]!.shops[0]);
    expect(shopTail.events.map((e) => e.seq)).toEqual(shopEvents.map((e) => e.seq));
  }, 180_000);
});

/**
 * Postgres only (PGlite runs transactions one at a time): once the reader has
 * seen some events, opens a transaction that takes the partner's next seq
 * and writes its event, then waits. While it is open, a request for the same
 * partner must wait behind it and the reader must stay at the seq before it;
 * after it commits, the reader sees it, then the request's event after it.
 */
const holdOneTransactionOpen = async (
  t: TestApp,
  base: string,
  partner: SeededPartner,
  tail: Tail,
  abort: Abort,
): Promise<void> => {
  await waitFor(
    "the reader to see 30 events",
    () => {
      if (abort.aborted) throw new Error("aborted: the test failed elsewhere");
      return tail.last >= 30;
    },
    30_000,
  );
  const hold = gate();
  const allocated = gate();
  let heldSeq = 0;
  const orderId = randomUUID();
  const slow = t.db.transaction(async (tx) => {
    heldSeq = await allocateSeq(tx, partner.id);
    allocated.open();
    const [{ now }] = (await tx.query<{ now: Date }>("SELECT now() AS now")) as [{ now: Date }];
    const order: Order = {
      id: orderId,
      partner_id: partner.id,
      shop_id: partner.shops[0]!,
      status: "created",
      items: [{ sku: "slow", quantity: 1 }],
      created_at: now.toISOString(),
      updated_at: now.toISOString(),
      last_seq: heldSeq,
    };
    await tx.query(
      `INSERT INTO orders (id, partner_id, shop_id, status, items, created_at, updated_at, last_seq)
       VALUES ($1, $2, $3, 'created', $4, $5, $5, $6)`,
      [orderId, partner.id, order.shop_id, JSON.stringify(order.items), now, heldSeq],
    );
    await appendEvent(tx, {
      partnerId: partner.id,
      shopId: order.shop_id,
      orderId,
      type: "order.created",
      seq: heldSeq,
      occurredAt: now,
      order,
    });
    await hold.promise;
  });
  try {
    await allocated.promise;
    let blockedSettled = false;
    const blocked = fetchJson<Order>(`${base}/v1/orders`, {
      method: "POST",
      headers: bearer(partner.backend.secret),
      body: { shop_id: partner.shops[1]!, items: [{ sku: "behind-slow", quantity: 1 }] },
    }).finally(() => {
      blockedSettled = true;
    });
    await waitFor(
      "a writer of the partner to wait on the held transaction's lock",
      async () => {
        const [row] = await t.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        );
        return row!.n >= 1;
      },
      30_000,
    );
    const pollsAtHold = tail.polls;
    await waitFor("the reader to poll 5 more times", () => tail.polls >= pollsAtHold + 5, 30_000);
    // The reader keeps reading (it takes no lock) but cannot get past the open transaction.
    expect(tail.last).toBe(heldSeq - 1);
    expect(tail.lastHead).toBe(heldSeq - 1);
    expect(blockedSettled).toBe(false);
    hold.open();
    await slow;
    const after = await blocked;
    expect(after.status).toBe(201);
    expect(after.body.last_seq).toBeGreaterThan(heldSeq);
    await waitFor("the reader to see the held event", () => tail.last >= heldSeq, 30_000);
    expect(tail.events.find((e) => e.seq === heldSeq)?.order_id).toBe(orderId);
  } finally {
    hold.open();
    await slow.catch(() => undefined);
  }
};
