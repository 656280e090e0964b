/**
 * Paging, limits and the shop filter of GET /v1/orders/created-history and
 * GET /v1/events.
 *
 * Against a real database (Postgres when DATABASE_URL is set, PGlite
 * otherwise) by inject(). One app and database for the file (an embedded
 * database takes seconds to start); every test seeds its own partners with
 * unique ids.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OrderEvent } from "../../src/domain/events.ts";
import type { OrderStatus } from "../../src/domain/orders.ts";
import { apiRequests, expectProblem } from "../support/api-requests.ts";
import { type SeededPartner, seedPartner } from "../support/fixtures.ts";
import { bearer, createTestApp, type TestApp } from "../support/test-app.ts";
import { DEFAULT_ADAPTER } from "../support/test-db.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp(DEFAULT_ADAPTER);
});
afterAll(async () => t?.close());

const { get, newOrder, patchStatus, readEvents } = apiRequests(() => t);

describe("created-history and events: paging, limits, shop filter", () => {
  let p: SeededPartner;
  /** seqs of the order.created events, oldest first, and their shops. */
  const created: { seq: number; shop: string; id: string }[] = [];
  let totalEvents = 0;

  beforeAll(async () => {
    p = await seedPartner(t.db, { shops: 2 });
    // 25 orders over two shops, each moved on 3 or 4 times: 113 events, created seqs not contiguous.
    for (let i = 0; i < 25; i++) {
      const order = await newOrder(p, i % 2);
      created.push({ seq: order.last_seq, shop: order.shop_id, id: order.id });
      totalEvents++;
      const steps: OrderStatus[] = ["accepted", "preparing", "ready", "picked_up"];
      const path = steps.slice(0, 4 - (i % 2));
      for (const status of path) {
        expect((await patchStatus(p, order.id, status)).statusCode).toBe(200);
        totalEvents++;
      }
    }
  });

  const history = async (query: string, secret = p.backend.secret) => {
    const response = await get(`/v1/orders/created-history?${query}`, bearer(secret));
    expect(response.statusCode, response.body).toBe(200);
    return response.json<{
      orders_created_events: { id: number; occurred_at: string; order_id: string; shop_id: string }[];
    }>().orders_created_events;
  };

  it("with no cursor pages newest first, default limit 20", async () => {
    const page = await history("");
    expect(page.map((e) => e.id)).toEqual(
      created
        .map((c) => c.seq)
        .reverse()
        .slice(0, 20),
    );
    expect(page[0]).toEqual({
      id: created.at(-1)!.seq,
      order_id: created.at(-1)!.id,
      shop_id: created.at(-1)!.shop,
      occurred_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
  });

  it("older_than pages newest first to the end; newer_than pages oldest first to the end", async () => {
    const down: number[] = [];
    let page = await history("limit=4");
    while (page.length > 0) {
      expect(page.length).toBeLessThanOrEqual(4);
      down.push(...page.map((e) => e.id));
      page = await history(`limit=4&older_than=${page.at(-1)!.id}`);
    }
    expect(down).toEqual(created.map((c) => c.seq).reverse());

    const up: number[] = [];
    let cursor = 0;
    for (;;) {
      const next = await history(`limit=4&newer_than=${cursor}`);
      if (next.length === 0) break;
      up.push(...next.map((e) => e.id));
      cursor = next.at(-1)!.id;
    }
    expect(up).toEqual(created.map((c) => c.seq));
    // A cursor in the middle: strictly before / after it, not including it.
    const middle = created[10]!.seq;
    expect((await history(`older_than=${middle}&limit=100`)).map((e) => e.id)).toEqual(
      created
        .slice(0, 10)
        .map((c) => c.seq)
        .reverse(),
    );
    expect((await history(`newer_than=${middle}&limit=100`)).map((e) => e.id)).toEqual(
      created.slice(11).map((c) => c.seq),
    );
  });

  it("refuses older_than and newer_than together, and limits outside 1..100", async () => {
    const both = await get("/v1/orders/created-history?older_than=10&newer_than=2", bearer(p.backend.secret));
    const problem = expectProblem(both, 400, "VALIDATION_FAILED");
    expect(problem.errors.map((e: { field: string }) => e.field).join()).toMatch(/^query\./);
    for (const limit of ["0", "101", "-1", "abc", "1.5"]) {
      expectProblem(
        await get(`/v1/orders/created-history?limit=${limit}`, bearer(p.backend.secret)),
        400,
        "VALIDATION_FAILED",
        "query.limit",
      );
    }
    expectProblem(
      await get("/v1/orders/created-history?older_than=-1", bearer(p.backend.secret)),
      400,
      "VALIDATION_FAILED",
      "query.older_than",
    );
    expect(await history("limit=100")).toHaveLength(25);
    expect(await history("limit=1")).toHaveLength(1);
  });

  it("filters created-history and events by shop", async () => {
    const shop2 = p.shops[1]!;
    const page = await history(`shop_id=${shop2}&limit=100`);
    expect(page.map((e) => e.id)).toEqual(
      created
        .filter((c) => c.shop === shop2)
        .map((c) => c.seq)
        .reverse(),
    );
    const response = await get(`/v1/events?after=0&limit=1000&shop_id=${shop2}`, bearer(p.backend.secret));
    const body = response.json<{ events: OrderEvent[]; head_seq: number }>();
    expect(body.events.length).toBeGreaterThan(0);
    expect(body.events.every((e) => e.shop_id === shop2)).toBe(true);
    expect(body.head_seq).toBe(body.events.at(-1)!.seq);
    const all = await readEvents(p.backend.secret);
    expect(body.events).toEqual(all.filter((e) => e.shop_id === shop2));
    expectProblem(await get("/v1/events?shop_id=no-such-shop", bearer(p.backend.secret)), 404, "NOT_FOUND");
  });

  it("events: oldest first, default limit 100, 1..1000 accepted, 0 and 1001 refused", async () => {
    expect(totalEvents).toBeGreaterThan(100);
    const first = await get("/v1/events?after=0", bearer(p.backend.secret));
    const body = first.json<{ events: OrderEvent[]; head_seq: number; epoch: string }>();
    expect(body.events.map((e) => e.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(body.head_seq).toBe(totalEvents);
    expect(body.epoch).toMatch(/^[0-9a-f-]{36}$/);
    expect(await readEvents(p.backend.secret, "after=0&limit=1000")).toHaveLength(totalEvents);
    expect(await readEvents(p.backend.secret, "after=7&limit=1")).toEqual([body.events[7]]);
    expect(await readEvents(p.backend.secret, `after=${totalEvents}&limit=1000`)).toEqual([]);
    for (const limit of ["0", "1001", "x"]) {
      expectProblem(
        await get(`/v1/events?after=0&limit=${limit}`, bearer(p.backend.secret)),
        400,
        "VALIDATION_FAILED",
        "query.limit",
      );
    }
    for (const after of ["-1", "1e999", "abc"]) {
      expectProblem(
        await get(`/v1/events?after=${after}`, bearer(p.backend.secret)),
        400,
        "VALIDATION_FAILED",
        "query.after",
      );
    }
  });
});
