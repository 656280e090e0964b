/**
 * The admin API: the admin token, creating partners, shops and credentials,
 * the kill switch (suspend and resume) and revocation.
 *
 * Against a real database (Postgres when DATABASE_URL is set, PGlite
 * otherwise) by inject(). One app and database for the file (an embedded
 * database takes seconds to start); every test seeds its own partners with
 * unique ids.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiRequests, expectProblem } from "../support/api-requests.ts";
import { seedPartner, uniqueId } from "../support/fixtures.ts";
import { admin, bearer, createTestApp, type TestApp } from "../support/test-app.ts";
import { DEFAULT_ADAPTER } from "../support/test-db.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp(DEFAULT_ADAPTER);
});
afterAll(async () => t?.close());

const { post, get, createOrder, newOrder, patchStatus, footprint } = apiRequests(() => t);

describe("admin", () => {
  it("refuses every admin route without the admin token: 401, nothing written", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    const doc = t.app.swagger() as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(doc.paths)
      .filter(([path]) => path.startsWith("/admin/v1/"))
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => ({ method: method.toUpperCase(), path })));
    expect(routes.length).toBeGreaterThanOrEqual(11);
    const before = await footprint(p.id);
    const bodies: Record<string, unknown> = {
      "/admin/v1/partners": { id: uniqueId("p"), name: "x" },
      "/admin/v1/partners/{partner}/shops": { id: "shop-9", name: "x" },
      "/admin/v1/partners/{partner}/credentials": { kind: "backend" },
      "/admin/v1/credentials/{id}/certificates": { fingerprint_sha256: "ab".repeat(32) },
    };
    const wrong = [
      {},
      { authorization: "Bearer wrong-token" },
      { authorization: `Bearer ${"x".repeat(27)}` },
      { authorization: "Basic dGVzdDp0ZXN0" },
      { authorization: "Bearer" },
      bearer(p.backend.secret),
    ];
    for (const route of routes) {
      const url = route.path.replace("{partner}", p.id).replace("{id}", p.backend.id);
      for (const headers of wrong) {
        const response = await t.app.inject({
          method: route.method as "GET",
          url,
          headers,
          ...(route.method === "POST" && bodies[route.path] ? { payload: bodies[route.path] as object } : {}),
        });
        expectProblem(response, 401, "UNAUTHENTICATED");
      }
    }
    expect(await footprint(p.id)).toEqual(before);
    // The backend credential still works: the DELETE above revoked nothing.
    expect((await get("/v1/orders", bearer(p.backend.secret))).statusCode).toBe(200);
  });

  it("creates a partner, a shop and credentials that work, with clear errors for bad input", async () => {
    const id = uniqueId("adm");
    const created = await post("/admin/v1/partners", admin(), { id, name: "Admin Partner" });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ id, state: "normal", head_seq: 0 });
    expectProblem(await post("/admin/v1/partners", admin(), { id, name: "Again" }), 409, "CONFLICT");
    expectProblem(
      await post("/admin/v1/partners", admin(), { id: "Bad_Id", name: "x" }),
      400,
      "VALIDATION_FAILED",
      "body.id",
    );
    expectProblem(
      await post("/admin/v1/partners", admin(), { id: "x".repeat(65), name: "x" }),
      400,
      "VALIDATION_FAILED",
      "body.id",
    );
    // A NUL cannot be stored in Postgres text: refused as bad input, not a 500.
    expectProblem(
      await post("/admin/v1/partners", admin(), { id: uniqueId("nul"), name: "a\u0000b" }),
      400,
      "VALIDATION_FAILED",
      "body.name",
    );
    expectProblem(
      await post(`/admin/v1/partners/${id}/shops`, admin(), { id: "nul", name: "\u0000" }),
      400,
      "VALIDATION_FAILED",
      "body.name",
    );
    expectProblem(
      await t.app.inject({
        method: "PUT",
        url: `/admin/v1/partners/${id}/state`,
        headers: admin(),
        payload: { state: "throttled", reason: "why\u0000" },
      }),
      400,
      "VALIDATION_FAILED",
      "body.reason",
    );
    expect(
      (await post(`/admin/v1/partners/${id}/shops`, admin(), { id: "main", name: "Main" })).statusCode,
    ).toBe(201);
    expectProblem(
      await post(`/admin/v1/partners/${uniqueId("none")}/shops`, admin(), { id: "main", name: "Main" }),
      404,
      "NOT_FOUND",
    );
    expectProblem(
      await post(`/admin/v1/partners/${id}/credentials`, admin(), { kind: "device", shop_id: "nope" }),
      400,
      "VALIDATION_FAILED",
      "body.shop_id",
    );
    const credential = await post(`/admin/v1/partners/${id}/credentials`, admin(), {
      kind: "device",
      shop_id: "main",
    });
    expect(credential.statusCode).toBe(201);
    const { secret, id: credentialId } = credential.json();
    expect(secret).toMatch(/^bcs_/);
    const order = await post("/v1/orders", bearer(secret), {
      shop_id: "main",
      items: [{ sku: "tea", quantity: 1 }],
    });
    expect(order.statusCode).toBe(201);
    const listed = await get(`/admin/v1/partners/${id}/credentials`, admin());
    expect(listed.json().credentials.map((c: { id: string }) => c.id)).toEqual([credentialId]);
    expect(listed.body).not.toContain(secret);
    const health = await get(`/admin/v1/partners/${id}/health`, admin());
    expect(health.json()).toMatchObject({ partner_id: id, state: "normal", head_seq: 1 });
  });

  it("suspend refuses the partner with 403 PARTNER_SUSPENDED, writing nothing; resume lets it back", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    const other = await seedPartner(t.db, { shops: 1 });
    const order = await newOrder(p);
    expect((await get("/v1/orders", bearer(p.backend.secret))).statusCode).toBe(200);

    const suspended = await post(`/admin/v1/partners/${p.id}/suspend`, admin(), undefined);
    expect(suspended.statusCode).toBe(200);
    expect(suspended.json()).toMatchObject({ id: p.id, state: "suspended" });
    const before = await footprint(p.id);
    // Right after the admin call returns: no grace period for a kill switch.
    expectProblem(await createOrder(p), 403, "PARTNER_SUSPENDED");
    expectProblem(await createOrder(p, 0, {}, p.devices[0]!.secret), 403, "PARTNER_SUSPENDED");
    expectProblem(await patchStatus(p, order.id, "accepted"), 403, "PARTNER_SUSPENDED");
    for (const url of [
      "/v1/orders",
      "/v1/events?after=0",
      "/v1/orders/created-history",
      `/v1/orders/${order.id}`,
    ]) {
      expectProblem(await get(url, bearer(p.backend.secret)), 403, "PARTNER_SUSPENDED");
    }
    expect(await footprint(p.id)).toEqual(before);
    // Only that partner.
    expect((await createOrder(other)).statusCode).toBe(201);

    const resumed = await post(`/admin/v1/partners/${p.id}/resume`, admin(), undefined);
    expect(resumed.json()).toMatchObject({ id: p.id, state: "normal" });
    expect((await patchStatus(p, order.id, "accepted")).statusCode).toBe(200);
    expect((await createOrder(p)).statusCode).toBe(201);
    expectProblem(
      await post(`/admin/v1/partners/${uniqueId("none")}/suspend`, admin(), undefined),
      404,
      "NOT_FOUND",
    );
  });

  it("revoke makes the credential 401 at once, leaves the others working; revoking twice is harmless", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    expect((await get("/v1/orders", bearer(p.backend.secret))).statusCode).toBe(200);
    const revoked = await t.app.inject({
      method: "DELETE",
      url: `/admin/v1/credentials/${p.backend.id}`,
      headers: admin(),
    });
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json().revoked_at).not.toBeNull();
    const before = await footprint(p.id);
    expectProblem(await get("/v1/orders", bearer(p.backend.secret)), 401, "UNAUTHENTICATED");
    expectProblem(await createOrder(p), 401, "UNAUTHENTICATED");
    expect(await footprint(p.id)).toEqual(before);
    expect((await get("/v1/orders", bearer(p.devices[0]!.secret))).statusCode).toBe(200);
    const twice = await t.app.inject({
      method: "DELETE",
      url: `/admin/v1/credentials/${p.backend.id}`,
      headers: admin(),
    });
    expect(twice.statusCode).toBe(200);
    expect(twice.json().revoked_at).toBe(revoked.json().revoked_at);
    expectProblem(
      await t.app.inject({
        method: "DELETE",
        url: "/admin/v1/credentials/cr-aaaaaaaaaaaaaaaaaaaa",
        headers: admin(),
      }),
      404,
      "NOT_FOUND",
    );
  });
});
