/**
 * The order status machine of DESIGN.md: every legal move writes one event,
 * every other is refused and writes nothing, and the bridge is handed
 * exactly what the log holds.
 *
 * Against a real database (Postgres when DATABASE_URL is set, PGlite
 * otherwise) by inject(). One app and database for the file (an embedded
 * database takes seconds to start); every test seeds its own partners with
 * unique ids.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OrderStatus } from "../../src/domain/orders.ts";
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

describe("the status machine", () => {
  const STATUSES: OrderStatus[] = ["created", "accepted", "preparing", "ready", "picked_up", "cancelled"];
  /** DESIGN.md: created → accepted → preparing → ready → picked_up, or → cancelled before picked_up. */
  const LEGAL = new Set([
    "created>accepted",
    "accepted>preparing",
    "preparing>ready",
    "ready>picked_up",
    "created>cancelled",
    "accepted>cancelled",
    "preparing>cancelled",
    "ready>cancelled",
  ]);
  const PATH: Record<OrderStatus, OrderStatus[]> = {
    created: [],
    accepted: ["accepted"],
    preparing: ["accepted", "preparing"],
    ready: ["accepted", "preparing", "ready"],
    picked_up: ["accepted", "preparing", "ready", "picked_up"],
    cancelled: ["accepted", "cancelled"],
  };

  it.each(STATUSES)("from %s: every legal move writes one event, every other is refused", async (from) => {
    const p = await seedPartner(t.db, { shops: 1 });
    for (const to of STATUSES) {
      const order = await newOrder(p);
      for (const step of PATH[from]) expect((await patchStatus(p, order.id, step)).statusCode).toBe(200);
      const before = await footprint(p.id);
      const response = await patchStatus(p, order.id, to);
      const after = await footprint(p.id);
      if (LEGAL.has(`${from}>${to}`)) {
        expect(response.statusCode, `${from} → ${to}`).toBe(200);
        expect(response.json()).toMatchObject({ id: order.id, status: to, last_seq: before.head_seq + 1 });
        expect(after.head_seq).toBe(before.head_seq + 1);
        const [event] = await readEvents(p.backend.secret, `after=${before.head_seq}`);
        expect(event).toMatchObject({
          type: "order.status_changed",
          order_id: order.id,
          order: { status: to },
        });
      } else if (from === to) {
        // Asking for the current status changes nothing and writes no event.
        expect(response.statusCode, `${from} → ${to}`).toBe(200);
        expect(response.json()).toMatchObject({ id: order.id, status: from });
        expect(after).toEqual(before);
      } else {
        const problem = expectProblem(response, 409, "ILLEGAL_TRANSITION");
        expect(problem.detail).toContain(from);
        expect(after).toEqual(before);
      }
    }
  });

  it("hands the bridge exactly the events the log holds, one per change, none for a replay or a no-op", async () => {
    const p = await seedPartner(t.db, { shops: 2 });
    const mine = () => t.committed.filter((event) => event.partner_id === p.id);
    const order = await newOrder(p, 1);
    expect((await createOrder(p, 0, { "Idempotency-Key": "handover-0001" })).statusCode).toBe(201);
    expect((await createOrder(p, 0, { "Idempotency-Key": "handover-0001" })).statusCode).toBe(200);
    for (const status of ["accepted", "accepted", "preparing"]) {
      expect((await patchStatus(p, order.id, status)).statusCode).toBe(200);
    }
    // The bridge publishes a handed-over event instead of reading it back: it must be the log's, field for field.
    const logged = await readEvents(p.backend.secret);
    expect(logged.map((event) => event.seq)).toEqual([1, 2, 3, 4]);
    expect(mine()).toEqual(logged);
  });

  it("refuses a bad status, a bad id and an unknown order, naming the field, writing nothing", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    const order = await newOrder(p);
    const before = await footprint(p.id);
    expectProblem(await patchStatus(p, order.id, "done"), 400, "VALIDATION_FAILED", "body.status");
    expectProblem(
      await t.app.inject({
        method: "PATCH",
        url: `/v1/orders/${order.id}`,
        headers: bearer(p.backend.secret),
        payload: { status: "accepted", extra: 1 },
      }),
      400,
      "VALIDATION_FAILED",
    );
    expectProblem(await patchStatus(p, "not-a-uuid", "accepted"), 400, "VALIDATION_FAILED", "params.id");
    expectProblem(
      await get("/v1/orders/not-a-uuid", bearer(p.backend.secret)),
      400,
      "VALIDATION_FAILED",
      "params.id",
    );
    expectProblem(await patchStatus(p, "00000000-0000-4000-8000-000000000000", "accepted"), 404, "NOT_FOUND");
    expect(await footprint(p.id)).toEqual(before);
  });
});
