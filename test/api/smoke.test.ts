import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedPartner } from "../support/fixtures.ts";
import { bearer, createTestApp, type TestApp } from "../support/test-app.ts";

describe("app smoke", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp("pglite");
  });
  afterAll(async () => t.close());

  it("creates an order and reads it back as event seq 1", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    const created = await t.app.inject({
      method: "POST",
      url: "/v1/orders",
      headers: bearer(p.backend.secret),
      payload: { shop_id: p.shops[0], items: [{ sku: "latte", quantity: 1 }] },
    });
    expect(created.statusCode).toBe(201);
    const events = await t.app.inject({ url: "/v1/events?after=0", headers: bearer(p.backend.secret) });
    expect(events.json().events.map((e: { seq: number }) => e.seq)).toEqual([1]);
  });
});
