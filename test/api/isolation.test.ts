/**
 * Isolation between partners and between the shops of one partner:
 * another's order is 404, its events never cross.
 *
 * Against a real database (Postgres when DATABASE_URL is set, PGlite
 * otherwise) by inject(). One app and database for the file (an embedded
 * database takes seconds to start); every test seeds its own partners with
 * unique ids.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OrderEvent } from "../../src/domain/events.ts";
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

const { get, createOrder, newOrder, patchStatus, readEvents, footprint } = apiRequests(() => t);

describe("isolation", () => {
  it("between partners: another partner's order is 404 and its events never cross", async () => {
    const a = await seedPartner(t.db, { shops: 1 });
    const b = await seedPartner(t.db, { shops: 1 });
    const orderA = await newOrder(a);
    const orderB = await newOrder(b);
    const before = { a: await footprint(a.id), b: await footprint(b.id) };

    expectProblem(await get(`/v1/orders/${orderA.id}`, bearer(b.backend.secret)), 404, "NOT_FOUND");
    expectProblem(await patchStatus(b, orderA.id, "accepted"), 404, "NOT_FOUND");
    expect({ a: await footprint(a.id), b: await footprint(b.id) }).toEqual(before);

    const eventsB = await readEvents(b.backend.secret);
    expect(eventsB.map((e) => e.order_id)).toEqual([orderB.id]);
    expect(eventsB.every((e) => e.partner_id === b.id)).toBe(true);
    const historyB = await get("/v1/orders/created-history", bearer(b.backend.secret));
    expect(historyB.json().orders_created_events.map((e: { order_id: string }) => e.order_id)).toEqual([
      orderB.id,
    ]);
    const stateB = await get("/v1/orders", bearer(b.backend.secret));
    expect(stateB.json().orders.map((o: Order) => o.id)).toEqual([orderB.id]);
    // Both partners' logs start at 1: seq is per partner.
    expect(orderA.last_seq).toBe(1);
    expect(orderB.last_seq).toBe(1);
  });

  it("between shops: a device credential sees only its shop, another shop is 404 everywhere", async () => {
    const p = await seedPartner(t.db, { shops: 2 });
    const [own, other] = p.shops as [string, string];
    const device = p.devices[0]!.secret;
    const ownOrder = await newOrder(p, 0);
    const otherOrder = await newOrder(p, 1);
    const before = await footprint(p.id);

    expectProblem(await get(`/v1/orders/${otherOrder.id}`, bearer(device)), 404, "NOT_FOUND");
    expectProblem(await patchStatus(p, otherOrder.id, "accepted", device), 404, "NOT_FOUND");
    expectProblem(await createOrder(p, 1, {}, device), 404, "NOT_FOUND");
    for (const url of [
      `/v1/events?shop_id=${other}`,
      `/v1/orders/created-history?shop_id=${other}`,
      `/v1/orders?shop_id=${other}`,
    ]) {
      expectProblem(await get(url, bearer(device)), 404, "NOT_FOUND");
    }
    expect(await footprint(p.id)).toEqual(before);

    expect((await get(`/v1/orders/${ownOrder.id}`, bearer(device))).statusCode).toBe(200);
    const mine = await createOrder(p, 0, {}, device);
    expect(mine.statusCode).toBe(201);
    const events = await get("/v1/events?after=0", bearer(device));
    const body = events.json<{ events: OrderEvent[]; head_seq: number }>();
    expect(body.events.map((e) => e.order_id)).toEqual([ownOrder.id, mine.json().id]);
    expect(body.events.every((e) => e.shop_id === own)).toBe(true);
    expect(body.head_seq).toBe(mine.json().last_seq);
    expect(
      (await get(`/v1/events?shop_id=${own}`, bearer(device))).json().events.map((e: OrderEvent) => e.seq),
    ).toEqual(body.events.map((e) => e.seq));
    const history = (await get("/v1/orders/created-history", bearer(device))).json();
    expect(history.orders_created_events.every((e: { shop_id: string }) => e.shop_id === own)).toBe(true);
    const state = (await get("/v1/orders", bearer(device))).json();
    expect(state.orders.map((o: Order) => o.shop_id)).toEqual([own, own]);
  });
});
