/**
 * GET /v1/events' pages served from the memory of events read (src/store/event-text-cache.ts
 * through createHistoryReader): byte for byte the page the database alone gives, whatever was
 * kept (holes, one shop's events, an older head), with the same refusals; and a page whose
 * events are all kept reads no event from the database.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventQuery } from "../../src/domain/events.ts";
import type { Db } from "../../src/store/db.ts";
import { createDeliveryLog } from "../../src/store/delivery-log.ts";
import { createHistoryReader, type HistoryReader } from "../../src/store/event-log.ts";
import { EventTextCache } from "../../src/store/event-text-cache.ts";
import { createSessionLog } from "../../src/store/mqtt-sessions.ts";
import { createOrderStore } from "../../src/store/orders.ts";
import { createOrders } from "../bridge/helpers.ts";
import { type SeededPartner, seedPartner } from "../support/fixtures.ts";
import { AVAILABLE_ADAPTERS, createTestDb, type TestDb } from "../support/test-db.ts";

/** The page the database alone gives: a reader with no memory. */
const fromLogOnly = (db: Db, query: EventQuery) => createHistoryReader(db, new EventTextCache(0)).read(query);

describe.each(AVAILABLE_ADAPTERS)("pages from the event text cache on %s", (kind) => {
  let t: TestDb;
  let p: SeededPartner;
  let other: SeededPartner;
  beforeAll(async () => {
    t = await createTestDb(kind);
    p = await seedPartner(t.db, { shops: 3 });
    other = await seedPartner(t.db, { shops: 3 });
    await createOrders(t.db, p.id, p.shops, 40);
    await createOrders(t.db, other.id, other.shops, 40);
  }, 120_000);
  afterAll(async () => t?.cleanup());

  /** Every page of a grid of cursors, limits and scopes, read with the cache and without. */
  const expectSamePages = async (history: HistoryReader, partner: SeededPartner, head: number) => {
    for (const shopId of [undefined, ...partner.shops]) {
      for (const after of [0, 5, 9, 10, 12, 14, 15, 20, head - 2, head - 1, head, head + 3]) {
        for (const limit of [1, 3, 7, 100]) {
          const query: EventQuery = { partnerId: partner.id, after, limit, ...(shopId ? { shopId } : {}) };
          const cached = await history.read(query);
          expect(cached, JSON.stringify(query)).toEqual(await fromLogOnly(t.db, query));
        }
      }
    }
  };

  it("gives the database's page whatever was kept, and keeps giving it as the head moves", async () => {
    const history = createHistoryReader(t.db, new EventTextCache(4 * 1024 * 1024));
    // Holes: a few events of the partner, then one shop's (not contiguous in the partner's seq).
    await history.read({ partnerId: p.id, after: 10, limit: 5 });
    await history.read({ partnerId: p.id, after: 0, limit: 4, shopId: p.shops[1]! });
    // Another partner's events at the same seqs: never served for this one.
    await history.read({ partnerId: other.id, after: 0, limit: 40 });
    await expectSamePages(history, p, 40);
    // New events: pages that reached the old head now reach the new one.
    await createOrders(t.db, p.id, p.shops, 5);
    await expectSamePages(history, p, 45);
  });

  it("reads no event from the database for a page it keeps: the scope's head and pruned point only", async () => {
    const limits: unknown[] = [];
    // The real database, with each statement's LIMIT parameter noted.
    const noting: Db = Object.create(t.db, {
      query: {
        value: (statement: unknown, params?: unknown[]) => {
          // Page statements only (the epoch is read once, with no parameters).
          if (params && params.length >= 3) limits.push(params[2]);
          return t.db.query(statement as string, params);
        },
      },
    });
    const history = createHistoryReader(noting, new EventTextCache(4 * 1024 * 1024));
    const query = { partnerId: p.id, after: 20, limit: 10 };
    const first = await history.read(query);
    expect(limits).toEqual([10]);
    limits.length = 0;
    expect(await history.read(query)).toEqual(first);
    expect(limits).toEqual([0]);
  });

  it("keeps what the delivery core read, as the bytes the log gives", async () => {
    const q = await seedPartner(t.db, { shops: 2 });
    const recent = new EventTextCache(4 * 1024 * 1024);
    const orders = createOrderStore(t.db);
    const { order } = await orders.create(
      { partnerId: q.id, shopId: null },
      { shop_id: q.shops[0]!, items: [{ sku: "latte", quantity: 2 }] },
    );
    await orders.setStatus({ partnerId: q.id, shopId: null }, order.id, "accepted");
    // A status change that changes nothing writes no event, and keeps none.
    await orders.setStatus({ partnerId: q.id, shopId: null }, order.id, "accepted");
    await createOrders(t.db, q.id, q.shops, 3);
    // Each event's bytes as the log alone gives them (a page of one, without its brackets).
    const fromLog: string[] = [];
    for (let seq = 1; seq <= 5; seq++) {
      const page = await fromLogOnly(t.db, { partnerId: q.id, after: seq - 1, limit: 1 });
      fromLog.push(page.eventsJson.toString().slice(1, -1));
    }
    const { epoch } = await fromLogOnly(t.db, { partnerId: q.id, after: 0, limit: 1 });
    const kept = () =>
      [1, 2, 3, 4, 5].map((seq) => recent.events(epoch, q.id)?.get(seq)?.json.toString() ?? "not kept");
    expect(kept()).toEqual(["not kept", "not kept", "not kept", "not kept", "not kept"]);
    const events = await (await createDeliveryLog(t.db, recent)).readAfter(
      [{ partnerId: q.id, afterSeq: 0 }],
      100,
    );
    expect(kept()).toEqual(fromLog);
    // The objects the delivery core hands on are those bytes, parsed.
    expect(events).toEqual(fromLog.map((text) => JSON.parse(text)));
  });

  it("gives a replay the log's events whatever was kept", async () => {
    const recent = new EventTextCache(4 * 1024 * 1024);
    const epoch = (await fromLogOnly(t.db, { partnerId: p.id, after: 0, limit: 1 })).epoch;
    // Holes: some of the partner's events kept, then one shop's.
    await createHistoryReader(t.db, recent).read({ partnerId: p.id, after: 10, limit: 5 });
    await createSessionLog(t.db, recent).read(p.id, 20, 4, p.shops[2]!);
    expect(recent.events(epoch, p.id)?.has(11)).toBe(true);
    const cached = createSessionLog(t.db, recent);
    const plain = createSessionLog(t.db);
    for (const shopId of [undefined, ...p.shops])
      for (const after of [0, 9, 10, 12, 15, 21, 40])
        for (const limit of [1, 5, 100]) {
          const bytes = async (log: typeof plain) =>
            (await log.read(p.id, after, limit, shopId)).map((e) => [
              e.seq,
              e.shopId,
              e.type,
              e.json.toString(),
            ]);
          expect(await bytes(cached), JSON.stringify({ shopId, after, limit })).toEqual(await bytes(plain));
        }
  });

  it("refuses a cursor behind retention even when its events are kept", async () => {
    const pruned = await seedPartner(t.db, { shops: 1 });
    await createOrders(t.db, pruned.id, pruned.shops, 10);
    const history = createHistoryReader(t.db, new EventTextCache(4 * 1024 * 1024));
    await history.read({ partnerId: pruned.id, after: 0, limit: 10 });
    await t.db.query("UPDATE partners SET pruned_through_seq = 5 WHERE id = $1", [pruned.id]);
    await expect(history.read({ partnerId: pruned.id, after: 3, limit: 10 })).rejects.toMatchObject({
      code: "CURSOR_EXPIRED",
    });
    const rest = await history.read({ partnerId: pruned.id, after: 5, limit: 10 });
    expect(rest).toEqual(await fromLogOnly(t.db, { partnerId: pruned.id, after: 5, limit: 10 }));
    expect(rest.count).toBe(5);
  });
});
