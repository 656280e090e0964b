/**
 * Retention as the API shows it: an expired cursor gets 410 CURSOR_EXPIRED
 * while GET /v1/orders still returns the full state.
 *
 * Against a real database (Postgres when DATABASE_URL is set, PGlite
 * otherwise) by inject(). One app and database for the file (an embedded
 * database takes seconds to start); every test seeds its own partners with
 * unique ids.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Order } from "../../src/domain/orders.ts";
import { pruneHistory } from "../../src/store/retention.ts";
import { apiRequests, expectProblem } from "../support/api-requests.ts";
import { seedPartner } from "../support/fixtures.ts";
import { bearer, createTestApp, type TestApp } from "../support/test-app.ts";
import { DEFAULT_ADAPTER } from "../support/test-db.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp(DEFAULT_ADAPTER);
});
afterAll(async () => t?.close());

const { get, newOrder, patchStatus, readEvents } = apiRequests(() => t);

describe("retention", () => {
  it("an expired cursor gets 410 CURSOR_EXPIRED while GET /v1/orders still returns the full state", async () => {
    const p = await seedPartner(t.db, { shops: 2 });
    const orders: Order[] = [];
    for (let i = 0; i < 4; i++) orders.push(await newOrder(p, i % 2));
    await patchStatus(p, orders[0]!.id, "accepted");
    const stateBefore = (await get("/v1/orders", bearer(p.backend.secret))).json<{
      orders: Order[];
      as_of_seq: number;
    }>();
    expect(stateBefore.as_of_seq).toBe(5);

    // As if the bridge had published everything: retention never prunes past its cursor.
    await t.db.query("INSERT INTO bridge_cursors (partner_id, published_seq) VALUES ($1, 5)", [p.id]);
    const pruned = await pruneHistory(t.db, 1, new Date(Date.now() + 3 * 86_400_000));
    expect(pruned.eventsDeleted).toBeGreaterThanOrEqual(5);

    const expired = expectProblem(
      await get("/v1/events?after=0", bearer(p.backend.secret)),
      410,
      "CURSOR_EXPIRED",
    );
    expect(expired.detail).toContain("/v1/orders");
    expectProblem(await get("/v1/events?after=4", bearer(p.backend.secret)), 410, "CURSOR_EXPIRED");
    expectProblem(await get("/v1/events?after=0", bearer(p.devices[0]!.secret)), 410, "CURSOR_EXPIRED");
    expectProblem(
      await get("/v1/orders/created-history?newer_than=0", bearer(p.backend.secret)),
      410,
      "CURSOR_EXPIRED",
    );
    // A cursor at the pruned point has lost nothing.
    const atHead = await get("/v1/events?after=5", bearer(p.backend.secret));
    expect(atHead.statusCode).toBe(200);
    expect(atHead.json()).toMatchObject({ events: [], head_seq: 5 });

    const stateAfter = (await get("/v1/orders", bearer(p.backend.secret))).json<{
      orders: Order[];
      as_of_seq: number;
    }>();
    expect(stateAfter).toEqual(stateBefore);
    expect((await get(`/v1/orders/${orders[1]!.id}`, bearer(p.backend.secret))).json()).toEqual(orders[1]);

    // Recovery: follow the events after as_of_seq.
    const next = await newOrder(p, 1);
    expect(next.last_seq).toBe(6);
    expect(
      (await readEvents(p.backend.secret, `after=${stateAfter.as_of_seq}`)).map((e) => e.order_id),
    ).toEqual([next.id]);
  });
});
