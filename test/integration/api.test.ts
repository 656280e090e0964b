/**
 * The REST contract of DESIGN.md against a real database (Postgres when
 * DATABASE_URL is set, PGlite otherwise): paging, limits, isolation,
 * idempotency, the status machine, admin auth, the kill switch, problem+json
 * errors that write nothing, the state snapshot and retention.
 *
 * One app and database for the file (an embedded database takes seconds to
 * start); every test seeds its own partners with unique ids.
 */
import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OrderEvent } from "../../src/domain/events.ts";
import type { Order, OrderStatus } from "../../src/domain/orders.ts";
import { pruneHistory } from "../../src/store/retention.ts";
import { type SeededPartner, seedPartner, uniqueId } from "../support/fixtures.ts";
import { admin, bearer, createTestApp, type TestApp } from "../support/test-app.ts";
import { DEFAULT_ADAPTER } from "../support/test-db.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp(DEFAULT_ADAPTER);
});
afterAll(async () => t?.close());

type Headers = Record<string, string>;

const post = (url: string, headers: Headers, payload: unknown) =>
  t.app.inject({ method: "POST", url, headers, payload: payload as Record<string, unknown> });
const get = (url: string, headers: Headers) => t.app.inject({ method: "GET", url, headers });

const createOrder = (p: SeededPartner, shop = 0, extra: Headers = {}, secret = p.backend.secret) =>
  post(
    "/v1/orders",
    { ...bearer(secret), ...extra },
    { shop_id: p.shops[shop], items: [{ sku: "latte", quantity: 1 }] },
  );

const newOrder = async (p: SeededPartner, shop = 0): Promise<Order> => {
  const response = await createOrder(p, shop);
  expect(response.statusCode).toBe(201);
  return response.json<Order>();
};

const patchStatus = (p: SeededPartner, orderId: string, status: string, secret = p.backend.secret) =>
  t.app.inject({
    method: "PATCH",
    url: `/v1/orders/${orderId}`,
    headers: bearer(secret),
    payload: { status },
  });

const readEvents = async (secret: string, query = "after=0&limit=1000"): Promise<OrderEvent[]> => {
  const response = await get(`/v1/events?${query}`, bearer(secret));
  expect(response.statusCode).toBe(200);
  return response.json<{ events: OrderEvent[] }>().events;
};

/** What the database holds for a partner: the check that a refused request wrote nothing. */
interface Footprint {
  head_seq: number;
  state: string;
  events: number;
  orders: number;
  keys: number;
  statuses: string;
  shops: number;
  credentials: number;
}

const footprint = async (partnerId: string): Promise<Footprint> => {
  const [row] = await t.db.query<Footprint & Record<string, unknown>>(
    `SELECT p.head_seq, p.state,
       (SELECT count(*)::int FROM order_events e WHERE e.partner_id = p.id) AS events,
       (SELECT count(*)::int FROM orders o WHERE o.partner_id = p.id) AS orders,
       (SELECT count(*)::int FROM idempotency_keys k WHERE k.partner_id = p.id) AS keys,
       (SELECT coalesce(json_agg(o.status ORDER BY o.id), '[]')::text FROM orders o WHERE o.partner_id = p.id) AS statuses,
       (SELECT count(*)::int FROM shops s WHERE s.partner_id = p.id) AS shops,
       (SELECT count(*)::int FROM credentials c WHERE c.partner_id = p.id) AS credentials
     FROM partners p WHERE p.id = $1`,
    [partnerId],
  );
  if (!row) throw new Error(`no partner ${partnerId}`);
  return row;
};

/** The RFC 9457 shape, the stable code, and (when given) the field the error names. */
const expectProblem = (response: LightMyRequestResponse, status: number, code: string, field?: string) => {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
  const problem = response.json();
  expect(problem).toMatchObject({ status, code, type: expect.stringMatching(/^urn:brewcast:problem:/) });
  expect(typeof problem.title).toBe("string");
  expect(problem.title.length).toBeGreaterThan(0);
  expect(typeof problem.detail).toBe("string");
  expect(problem.detail.length).toBeGreaterThan(0);
  if (field !== undefined) {
    expect(problem.errors?.map((e: { field: string }) => e.field)).toContain(field);
  }
  return problem;
};

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
