/**
 * GET /v1/orders: the state in one snapshot, paged by after_id, and
 * as_of_seq where the events continue.
 *
 * Against a real database (Postgres when DATABASE_URL is set, PGlite
 * otherwise) by inject(). One app and database for the file (an embedded
 * database takes seconds to start); every test seeds its own partners with
 * unique ids.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Order } from "../../src/domain/orders.ts";
import { apiRequests, expectProblem } from "../support/api-requests.ts";
import { seedPartner } from "../support/fixtures.ts";
import { bearer, createTestApp, type TestApp } from "../support/test-app.ts";
import { DEFAULT_ADAPTER } from "../support/test-db.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp(DEFAULT_ADAPTER);
});
afterAll(async () => t?.close());

const { get, newOrder, patchStatus, readEvents, footprint } = apiRequests(() => t);

describe("GET /v1/orders: the state in one snapshot", () => {
  it("pages with after_id in id order, filters, and as_of_seq is where the events continue", async () => {
    const p = await seedPartner(t.db, { shops: 2 });
    const orders: Order[] = [];
    for (let i = 0; i < 7; i++) orders.push(await newOrder(p, i % 2));
    for (const order of orders.slice(0, 3)) await patchStatus(p, order.id, "accepted");
    await patchStatus(p, orders[3]!.id, "cancelled");
    const head = (await footprint(p.id)).head_seq;

    const seen: Order[] = [];
    let afterId: string | undefined;
    for (;;) {
      const response = await get(
        `/v1/orders?limit=3${afterId ? `&after_id=${afterId}` : ""}`,
        bearer(p.backend.secret),
      );
      expect(response.statusCode).toBe(200);
      const page = response.json<{ orders: Order[]; as_of_seq: number }>();
      expect(page.as_of_seq).toBe(head);
      if (page.orders.length === 0) break;
      expect(page.orders.length).toBeLessThanOrEqual(3);
      seen.push(...page.orders);
      afterId = page.orders.at(-1)!.id;
    }
    expect(seen.map((o) => o.id)).toEqual(orders.map((o) => o.id).sort());
    const statusOf = Object.fromEntries(seen.map((o) => [o.id, o.status]));
    expect(orders.map((o) => statusOf[o.id])).toEqual([
      "accepted",
      "accepted",
      "accepted",
      "cancelled",
      "created",
      "created",
      "created",
    ]);

    const accepted = (await get("/v1/orders?status=accepted", bearer(p.backend.secret))).json();
    expect(accepted.orders.map((o: Order) => o.id).sort()).toEqual(
      orders
        .slice(0, 3)
        .map((o) => o.id)
        .sort(),
    );
    const shop2 = (await get(`/v1/orders?shop_id=${p.shops[1]}`, bearer(p.backend.secret))).json();
    expect(shop2.orders.every((o: Order) => o.shop_id === p.shops[1])).toBe(true);
    expect(shop2.orders).toHaveLength(3);
    for (const query of ["limit=0", "limit=1001", "after_id=nope"]) {
      const field = query.startsWith("limit") ? "query.limit" : "query.after_id";
      expectProblem(
        await get(`/v1/orders?${query}`, bearer(p.backend.secret)),
        400,
        "VALIDATION_FAILED",
        field,
      );
    }
    // Load the state, let things change, then follow the events after as_of_seq: state + events = now.
    const snapshot = (await get("/v1/orders?limit=1000", bearer(p.backend.secret))).json<{
      orders: Order[];
      as_of_seq: number;
    }>();
    const later = await newOrder(p);
    await patchStatus(p, orders[0]!.id, "preparing");
    const events = await readEvents(p.backend.secret, `after=${snapshot.as_of_seq}`);
    expect(events.map((e) => e.seq)).toEqual([snapshot.as_of_seq + 1, snapshot.as_of_seq + 2]);
    const state = new Map(snapshot.orders.map((o) => [o.id, o]));
    for (const event of events) state.set(event.order_id, event.order);
    const now = (await get("/v1/orders?limit=1000", bearer(p.backend.secret))).json<{ orders: Order[] }>();
    expect([...state.values()].sort((a, b) => (a.id < b.id ? -1 : 1))).toEqual(now.orders);
    expect(state.get(later.id)?.status).toBe("created");
  });
});

// Last in the file: pruning with a future `now` removes every event in this database.
