/**
 * The credential cache clears itself when access changes: an operator's
 * suspend, pin or resume through the admin API takes effect on the very next
 * request, although no admin route clears the cache (they cannot: the API's
 * credentials port has no such method) and the cache would otherwise trust a
 * login for ten minutes here.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildHttpApp, type HttpApp } from "../../src/api/app.ts";
import { type AccessFeed, createAccessFeed } from "../../src/store/access-feed.ts";
import { createCredentialStore } from "../../src/store/credentials.ts";
import { readDeliveryStatus } from "../../src/store/delivery-status.ts";
import { createHistoryReader, readEvents } from "../../src/store/event-log.ts";
import { EventTextCache } from "../../src/store/event-text-cache.ts";
import { createOrderStore } from "../../src/store/orders.ts";
import { createPartnerStore } from "../../src/store/partners.ts";
import { seedPartner } from "../support/fixtures.ts";
import { AVAILABLE_ADAPTERS, createTestDb, silentLog, type TestDb } from "../support/test-db.ts";

const ADMIN_TOKEN = "access-cache-admin-token-0123456789";

describe.each(AVAILABLE_ADAPTERS)("the credential cache on %s", (kind) => {
  let t: TestDb;
  let feed: AccessFeed;
  let app: HttpApp;

  beforeAll(async () => {
    t = await createTestDb(kind);
    feed = await createAccessFeed(t.db);
    const credentials = createCredentialStore(t.db, { accessChanges: feed, cacheTtlMs: 600_000 });
    app = await buildHttpApp({
      log: silentLog,
      adminToken: ADMIN_TOKEN,
      verifier: credentials,
      orders: createOrderStore(t.db),
      partners: createPartnerStore(t.db, { accessFeed: feed }),
      credentials,
      readEvents: (input) => readEvents(t.db, input),
      readEventsText: (input) => createHistoryReader(t.db, new EventTextCache(0)).read(input),
      deliveryStatus: async (partnerId) => (await readDeliveryStatus(t.db, partnerId))[0],
      readiness: async () => ({ ready: true, checks: {} }),
    });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await feed?.close();
    await t?.cleanup();
  });

  const events = (secret: string) =>
    app.inject({ method: "GET", url: "/v1/events", headers: { authorization: `Bearer ${secret}` } });
  const adminCall = (method: "POST" | "PUT", url: string, payload?: object) =>
    app.inject({
      method,
      url: `/admin/v1${url}`,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      ...(payload ? { payload } : {}),
    });

  it("suspend, pin and resume through the admin API take effect on the next request", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    // Logged in and cached: answered from the cache from now on.
    expect((await events(p.backend.secret)).statusCode).toBe(200);
    expect((await events(p.devices[0]!.secret)).statusCode).toBe(200);

    expect((await adminCall("POST", `/partners/${p.id}/suspend`)).statusCode).toBe(200);
    expect((await events(p.backend.secret)).json()).toMatchObject({ code: "PARTNER_SUSPENDED" });
    expect((await events(p.devices[0]!.secret)).statusCode).toBe(403);

    expect((await adminCall("POST", `/partners/${p.id}/resume`)).statusCode).toBe(200);
    expect((await events(p.backend.secret)).statusCode).toBe(200);

    const pinned = await adminCall("PUT", `/partners/${p.id}/state`, { state: "suspended", reason: "test" });
    expect(pinned.statusCode).toBe(200);
    expect((await events(p.backend.secret)).statusCode).toBe(403);

    expect((await adminCall("POST", `/partners/${p.id}/resume`)).statusCode).toBe(200);
    expect((await events(p.backend.secret)).statusCode).toBe(200);
  });
});
