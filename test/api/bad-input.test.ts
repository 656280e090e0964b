/**
 * Bad input: problem+json naming the field (body, query, params, headers),
 * 413 and 415, nothing written.
 *
 * Against a real database (Postgres when DATABASE_URL is set, PGlite
 * otherwise) by inject(). One app and database for the file (an embedded
 * database takes seconds to start); every test seeds its own partners with
 * unique ids.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiRequests, expectProblem } from "../support/api-requests.ts";
import { seedPartner, uniqueId } from "../support/fixtures.ts";
import { bearer, createTestApp, type TestApp } from "../support/test-app.ts";
import { DEFAULT_ADAPTER } from "../support/test-db.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp(DEFAULT_ADAPTER);
});
afterAll(async () => t?.close());

const { post, get, newOrder, footprint } = apiRequests(() => t);

describe("bad input: problem+json naming the field, nothing written", () => {
  it("names the field for body, query, params and header errors", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    const h = bearer(p.backend.secret);
    expectProblem(
      await post("/v1/orders", h, { shop_id: p.shops[0], items: [{ sku: "latte", quantity: 0 }] }),
      400,
      "VALIDATION_FAILED",
      "body.items.0.quantity",
    );
    expectProblem(
      await post("/v1/orders", h, { items: [{ sku: "latte", quantity: 1 }] }),
      400,
      "VALIDATION_FAILED",
      "body.shop_id",
    );
    expectProblem(
      await post("/v1/orders", h, { shop_id: p.shops[0], items: [] }),
      400,
      "VALIDATION_FAILED",
      "body.items",
    );
    expectProblem(
      await post("/v1/orders", h, { shop_id: "no-such-shop", items: [{ sku: "latte", quantity: 1 }] }),
      400,
      "VALIDATION_FAILED",
      "body.shop_id",
    );
    expectProblem(await get("/v1/orders?limit=abc", h), 400, "VALIDATION_FAILED", "query.limit");
    expectProblem(await get("/v1/orders?status=lost", h), 400, "VALIDATION_FAILED", "query.status");
    expectProblem(await get("/v1/orders/123", h), 400, "VALIDATION_FAILED", "params.id");
    expectProblem(
      await post(
        "/v1/orders",
        { ...h, "idempotency-key": "" },
        { shop_id: p.shops[0], items: [{ sku: "a", quantity: 1 }] },
      ),
      400,
      "VALIDATION_FAILED",
      "header.idempotency-key",
    );
    const malformed = await t.app.inject({
      method: "POST",
      url: "/v1/orders",
      headers: { ...h, "content-type": "application/json" },
      payload: '{"shop_id": ',
    });
    expectProblem(malformed, 400, "VALIDATION_FAILED", "body");
    expectProblem(await get("/v1/no-such-route", h), 404, "NOT_FOUND");
    expectProblem(await get("/v1/orders", {}), 401, "UNAUTHENTICATED");
    expectProblem(await get("/v1/orders", bearer("bcs_unknown")), 401, "UNAUTHENTICATED");
    expect(await footprint(p.id)).toMatchObject({ head_seq: 0, events: 0, orders: 0, keys: 0 });
  });

  it("413 for a body over 64 KiB and 415 for a body that is not JSON, nothing written", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    const h = { ...bearer(p.backend.secret), "idempotency-key": uniqueId("key") };
    const big = {
      shop_id: p.shops[0],
      items: Array.from({ length: 1200 }, (_, i) => ({
        sku: `sku-with-a-long-name-${i}-${"x".repeat(30)}`,
        quantity: 1,
      })),
    };
    expect(JSON.stringify(big).length).toBeGreaterThan(64 * 1024);
    expectProblem(await post("/v1/orders", h, big), 413, "PAYLOAD_TOO_LARGE");
    const order = await newOrder(p);
    const before = await footprint(p.id);
    expectProblem(
      await t.app.inject({
        method: "PATCH",
        url: `/v1/orders/${order.id}`,
        headers: h,
        payload: { status: "accepted", pad: "x".repeat(70_000) },
      }),
      413,
      "PAYLOAD_TOO_LARGE",
    );
    for (const contentType of ["text/plain", "application/x-www-form-urlencoded"]) {
      expectProblem(
        await t.app.inject({
          method: "POST",
          url: "/v1/orders",
          headers: { ...h, "content-type": contentType },
          payload: JSON.stringify({ shop_id: p.shops[0], items: [{ sku: "latte", quantity: 1 }] }),
        }),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
      );
    }
    expect(await footprint(p.id)).toEqual(before);
    expect(before).toMatchObject({ head_seq: 1, orders: 1, keys: 0 });
  });
});
