/**
 * Idempotency-Key on POST /v1/orders: a replay is the same order and no
 * second event; a reused key with another body, or a malformed key, is
 * refused and writes nothing.
 *
 * Against a real database (Postgres when DATABASE_URL is set, PGlite
 * otherwise) by inject(). One app and database for the file (an embedded
 * database takes seconds to start); every test seeds its own partners with
 * unique ids.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiRequests, expectProblem } from "../support/api-requests.ts";
import { type SeededPartner, seedPartner, uniqueId } from "../support/fixtures.ts";
import { bearer, createTestApp, type TestApp } from "../support/test-app.ts";
import { DEFAULT_ADAPTER } from "../support/test-db.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp(DEFAULT_ADAPTER);
});
afterAll(async () => t?.close());

const { post, patchStatus, readEvents, footprint } = apiRequests(() => t);

describe("idempotency", () => {
  const body = (p: SeededPartner, sku = "latte") => ({ shop_id: p.shops[0], items: [{ sku, quantity: 2 }] });

  it("replays the same key and body: 200, the same order, idempotent-replayed, no second event", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    const key = uniqueId("key");
    const first = await post("/v1/orders", { ...bearer(p.backend.secret), "idempotency-key": key }, body(p));
    expect(first.statusCode).toBe(201);
    expect(first.headers["idempotent-replayed"]).toBeUndefined();
    // The same body with its keys in another order is the same request.
    const again = await post(
      "/v1/orders",
      { ...bearer(p.backend.secret), "idempotency-key": key },
      { items: [{ quantity: 2, sku: "latte" }], shop_id: p.shops[0] },
    );
    expect(again.statusCode).toBe(200);
    expect(again.headers["idempotent-replayed"]).toBe("true");
    expect(again.json()).toEqual(first.json());
    expect((await readEvents(p.backend.secret)).map((e) => e.seq)).toEqual([1]);
    expect(await footprint(p.id)).toMatchObject({ head_seq: 1, events: 1, orders: 1, keys: 1 });
    // The replay answers with the order as it is now.
    expect((await patchStatus(p, first.json().id, "accepted")).statusCode).toBe(200);
    const later = await post("/v1/orders", { ...bearer(p.backend.secret), "idempotency-key": key }, body(p));
    expect(later.statusCode).toBe(200);
    expect(later.json()).toMatchObject({ id: first.json().id, status: "accepted" });
    // Keys are per partner: another partner may use the same one.
    const q = await seedPartner(t.db, { shops: 1 });
    const other = await post("/v1/orders", { ...bearer(q.backend.secret), "idempotency-key": key }, body(q));
    expect(other.statusCode).toBe(201);
    expect(other.json().id).not.toBe(first.json().id);
  });

  it("refuses the same key with another body: 422 IDEMPOTENCY_KEY_REUSED, nothing written", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    const key = uniqueId("key");
    expect(
      (await post("/v1/orders", { ...bearer(p.backend.secret), "idempotency-key": key }, body(p))).statusCode,
    ).toBe(201);
    const before = await footprint(p.id);
    const misuse = await post(
      "/v1/orders",
      { ...bearer(p.backend.secret), "idempotency-key": key },
      body(p, "espresso"),
    );
    expectProblem(misuse, 422, "IDEMPOTENCY_KEY_REUSED");
    expect(await footprint(p.id)).toEqual(before);
  });

  it("refuses a malformed Idempotency-Key naming the header, nothing written", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    for (const key of ["x".repeat(256), "has space", "tab\tkey"]) {
      expectProblem(
        await post("/v1/orders", { ...bearer(p.backend.secret), "idempotency-key": key }, body(p)),
        400,
        "VALIDATION_FAILED",
        "header.idempotency-key",
      );
    }
    expect(await footprint(p.id)).toMatchObject({ head_seq: 0, events: 0, orders: 0, keys: 0 });
  });

  it("concurrent requests with the same key create one order and one event", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    const key = uniqueId("key");
    const responses = await Promise.all(
      Array.from({ length: 12 }, () =>
        post("/v1/orders", { ...bearer(p.backend.secret), "idempotency-key": key }, body(p)),
      ),
    );
    const statuses = responses.map((r) => r.statusCode).sort();
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(responses.map((r) => r.json().id)).size).toBe(1);
    expect(await footprint(p.id)).toMatchObject({ head_seq: 1, events: 1, orders: 1, keys: 1 });
  });
});
