/**
 * GET /v1/events under a reconnect storm (issue 19): validators and cache headers that are
 * safe under per-credential auth, conditional requests, and the per-credential rate limit
 * (429 with Retry-After, which the SDK waits out).
 *
 * Against a real database, Postgres and embedded PGlite, by inject(); the SDK test listens
 * on a free port.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConsumerEvents, createConsumer, type OrderEvent } from "../../src/client/index.ts";
import { createOrderStore } from "../../src/store/orders.ts";
import { apiRequests, expectProblem } from "../support/api-requests.ts";
import { type SeededPartner, seedPartner } from "../support/fixtures.ts";
import { bearer, createTestApp, type TestApp } from "../support/test-app.ts";
import { AVAILABLE_ADAPTERS, DEFAULT_ADAPTER } from "../support/test-db.ts";
import { until } from "../support/wait.ts";

describe.each(AVAILABLE_ADAPTERS)("event page caching on %s", (kind) => {
  let t: TestApp;
  let a: SeededPartner;
  let b: SeededPartner;
  beforeAll(async () => {
    t = await createTestApp(kind);
    a = await seedPartner(t.db, { shops: 2 });
    b = await seedPartner(t.db, { shops: 2 });
    // Both partners: 6 events, shop-1 and shop-2 alternating, so cursors line up.
    for (const p of [a, b]) for (let i = 0; i < 6; i++) await newOrder(p, i % 2);
  });
  afterAll(async () => t?.close());

  const { get, newOrder } = apiRequests(() => t);
  const page = (query: string, secret: string, extra: Record<string, string> = {}) =>
    get(`/v1/events?${query}`, { ...bearer(secret), ...extra });

  it("a repeated page is answered 304 on its ETag, with no body and the same validators", async () => {
    const first = await page("after=0&limit=2", a.backend.secret);
    expect(first.statusCode).toBe(200);
    const etag = first.headers.etag as string;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    const again = await page("after=0&limit=2", a.backend.secret, { "if-none-match": etag });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe("");
    expect(again.headers.etag).toBe(etag);
    expect(again.headers["cache-control"]).toBe(first.headers["cache-control"]);
    expect(again.headers.vary).toBe("Authorization");
    // A weak form of the same tag, and a list holding it, match too (weak comparison, RFC 9110).
    expect(
      (await page("after=0&limit=2", a.backend.secret, { "if-none-match": `W/${etag}` })).statusCode,
    ).toBe(304);
    expect(
      (await page("after=0&limit=2", a.backend.secret, { "if-none-match": `"other", ${etag}` })).statusCode,
    ).toBe(304);
  });

  it("a full page below the head is private and immutable; a page reaching the head is not", async () => {
    const below = await page("after=0&limit=2", a.backend.secret);
    expect(below.headers["cache-control"]).toBe("private, max-age=86400, immutable");
    expect(below.headers.vary).toBe("Authorization");
    // After 4 of 6: two events, the last of them the head.
    const atHead = await page("after=4&limit=2", a.backend.secret);
    expect(atHead.json<{ events: OrderEvent[]; head_seq: number }>().events.at(-1)?.seq).toBe(6);
    expect(atHead.headers["cache-control"]).toBe("private, no-cache");
    expect(atHead.headers.etag).toBeDefined();
    // A short page and an empty one at the head may grow too.
    for (const query of ["after=5&limit=2", "after=6&limit=2", "after=0&limit=100"]) {
      expect((await page(query, a.backend.secret)).headers["cache-control"]).toBe("private, no-cache");
    }
  });

  it("the head page's ETag changes when the log grows, so a revalidation then gets the new body", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    await newOrder(p, 0);
    const before = await page("after=0&limit=10", p.backend.secret);
    await newOrder(p, 0);
    const after = await page("after=0&limit=10", p.backend.secret, {
      "if-none-match": before.headers.etag as string,
    });
    expect(after.statusCode).toBe(200);
    expect(after.headers.etag).not.toBe(before.headers.etag);
    expect(after.json<{ events: OrderEvent[] }>().events).toHaveLength(2);
  });

  it("two partners' identical cursors never share a validator (distinct ETags, Vary: Authorization)", async () => {
    const ofA = await page("after=0&limit=2", a.backend.secret);
    const ofB = await page("after=0&limit=2", b.backend.secret);
    expect(ofA.json().events[0].partner_id).toBe(a.id);
    expect(ofB.json().events[0].partner_id).toBe(b.id);
    expect(ofA.headers.etag).not.toBe(ofB.headers.etag);
    expect(ofB.headers.vary).toBe("Authorization");
    // A's validator offered by B revalidates nothing: B gets its own body.
    const crossed = await page("after=0&limit=2", b.backend.secret, {
      "if-none-match": ofA.headers.etag as string,
    });
    expect(crossed.statusCode).toBe(200);
    expect(crossed.json().events[0].partner_id).toBe(b.id);
  });

  it("a shop-scoped device and its partner get different ETags for the same cursor", async () => {
    const device = await page("after=0&limit=2", a.devices[0]!.secret);
    const partner = await page("after=0&limit=2", a.backend.secret);
    expect(device.statusCode).toBe(200);
    expect(device.json().events.every((e: OrderEvent) => e.shop_id === a.shops[0])).toBe(true);
    expect(device.headers.etag).not.toBe(partner.headers.etag);
    const crossed = await page("after=0&limit=2", a.devices[0]!.secret, {
      "if-none-match": partner.headers.etag as string,
    });
    expect(crossed.statusCode).toBe(200);
    // The same scope asked by the backend with shop_id is the same body: the same ETag.
    const filtered = await page(`after=0&limit=2&shop_id=${a.shops[0]}`, a.backend.secret);
    expect(filtered.body).toBe(device.body);
    expect(filtered.headers.etag).toBe(device.headers.etag);
  });

  it("bad If-None-Match values are harmless: the full page, as without one", async () => {
    const plain = await page("after=0&limit=2", a.backend.secret);
    for (const value of ['"', "garbage", 'W/"', ",,,", '"a" "b"', `${"x".repeat(10_000)}`, "\u00e9t\u00e9"]) {
      const response = await page("after=0&limit=2", a.backend.secret, { "if-none-match": value });
      expect(response.statusCode, value.slice(0, 20)).toBe(200);
      expect(response.body).toBe(plain.body);
    }
    // `*` names any current representation (RFC 9110 §13.1.2).
    expect((await page("after=0&limit=2", a.backend.secret, { "if-none-match": "*" })).statusCode).toBe(304);
  });

  it("an error is never cached: no ETag on a 410 or 404", async () => {
    const missing = await page(`after=0&shop_id=no-such-shop`, a.backend.secret);
    expectProblem(missing, 404, "NOT_FOUND");
    expect(missing.headers.etag).toBeUndefined();
    expect(missing.headers["cache-control"]).toBeUndefined();
  });
});

describe.each(AVAILABLE_ADAPTERS)("the per-credential rate limit on %s", (kind) => {
  let t: TestApp;
  let p: SeededPartner;
  let url: string;
  beforeAll(async () => {
    t = await createTestApp(kind, { rateLimit: { max: 3, windowMs: 1_000 } });
    p = await seedPartner(t.db, { shops: 1 });
    // Through the store: the API would count these against the limit under test.
    const orders = createOrderStore(t.db);
    for (let i = 0; i < 8; i++) {
      await orders.create(
        { partnerId: p.id, shopId: null },
        { shop_id: p.shops[0]!, items: [{ sku: "latte", quantity: 1 }] },
      );
    }
    url = await t.app.listen({ host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => t?.close());

  it("answers 429 RATE_LIMITED with Retry-After once a credential used its window, and counts each credential apart", async () => {
    const other = await seedPartner(t.db, { shops: 1 });
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 5; i++) {
      const response = await fetch(`${url}/v1/events?after=0&limit=1`, {
        headers: bearer(p.devices[0]!.secret),
      });
      statuses.push(response.status);
      if (response.status === 429) limited ??= response;
      else await response.arrayBuffer();
    }
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses.slice(3)).toEqual([429, 429]);
    expect(Number(limited!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(limited!.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(((await limited!.json()) as { code: string }).code).toBe("RATE_LIMITED");
    // Another credential has its own budget.
    const fresh = await fetch(`${url}/v1/events?after=0&limit=1`, { headers: bearer(other.backend.secret) });
    expect(fresh.status).toBe(200);
  });

  it("the SDK waits out each 429's Retry-After and still hands out every event once, in order", async () => {
    const handled: number[] = [];
    const errors: ConsumerEvents["error"][0][] = [];
    const consumer = createConsumer({
      apiUrl: url,
      mqttUrl: "mqtt://127.0.0.1:1", // no broker: REST alone
      credentialId: p.backend.id,
      secret: p.backend.secret,
      partner: p.id,
      pageSize: 1,
      reconnectMs: 60_000,
      jitterMs: 200,
    });
    consumer.on("error", (info) => errors.push(info));
    const outcome = consumer.run(async (event) => {
      handled.push(event.seq);
    });
    try {
      await until(() => handled.length === 8, 20_000, "8 events handled");
    } finally {
      await consumer.stop();
    }
    await outcome;
    expect(handled).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const waits = errors.filter(
      (e) => e.during === "rest" && (e.error as { status?: number }).status === 429,
    );
    expect(waits.length).toBeGreaterThan(0);
    for (const wait of waits) expect(wait.retryInMs).toBeGreaterThanOrEqual(1_000);
  });
});

describe("the bound on history reads in progress", () => {
  let t: TestApp;
  let p: SeededPartner;
  beforeAll(async () => {
    t = await createTestApp(DEFAULT_ADAPTER, { maxPendingHistoryReads: 2 });
    p = await seedPartner(t.db, { shops: 1 });
    for (let i = 0; i < 3; i++) await apiRequests(() => t).newOrder(p, 0);
  });
  afterAll(async () => t?.close());

  it("answers reads beyond it 429 RATE_LIMITED with Retry-After at once, and serves the rest", async () => {
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        t.app.inject({ method: "GET", url: "/v1/events?after=0", headers: bearer(p.backend.secret) }),
      ),
    );
    const limited = responses.filter((r) => r.statusCode === 429);
    const served = responses.filter((r) => r.statusCode === 200);
    expect(limited.length + served.length).toBe(20);
    expect(served.length).toBeGreaterThanOrEqual(2);
    expect(limited.length).toBeGreaterThan(0);
    for (const response of limited) {
      expect(expectProblem(response, 429, "RATE_LIMITED").detail).toMatch(/history reads are in progress/);
      expect(Number(response.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(response.headers.etag).toBeUndefined();
    }
    // Once they are answered there is room again.
    const after = await t.app.inject({
      method: "GET",
      url: "/v1/events?after=0",
      headers: bearer(p.backend.secret),
    });
    expect(after.statusCode).toBe(200);
  });
});
