/**
 * Retention never prunes an event the bridge has not published yet: it is
 * still owed to MQTT subscribers, and the bridge would skip it; nor one a
 * deliverable webhook endpoint has not been handed yet.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readEvents } from "../../src/store/event-log.ts";
import { pruneHistory } from "../../src/store/retention.ts";
import { createWebhookStore } from "../../src/store/webhooks.ts";
import { createOrders } from "../bridge/helpers.ts";
import { seedPartner } from "../support/fixtures.ts";
import { createTestDb, type TestDb } from "../support/test-db.ts";

describe("retention and the bridge cursor", () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  }, 120_000);
  afterAll(async () => t?.cleanup());

  it("prunes old events only up to the bridge's durable cursor", async () => {
    const published = await seedPartner(t.db, { shops: 1 });
    const unpublished = await seedPartner(t.db, { shops: 1 });
    await createOrders(t.db, published.id, published.shops, 5);
    await createOrders(t.db, unpublished.id, unpublished.shops, 5);
    await t.db.query("INSERT INTO bridge_cursors (partner_id, published_seq) VALUES ($1, 3)", [published.id]);

    const result = await pruneHistory(t.db, 1, new Date(Date.now() + 3 * 86_400_000));
    expect(result.eventsDeleted).toBe(3);

    const rest = await readEvents(t.db, { partnerId: published.id, after: 3, limit: 10 });
    expect(rest.events.map((e) => e.seq)).toEqual([4, 5]);
    await expect(readEvents(t.db, { partnerId: published.id, after: 2, limit: 10 })).rejects.toMatchObject({
      code: "CURSOR_EXPIRED",
    });
    // No bridge cursor at all: nothing of that partner is pruned.
    const whole = await readEvents(t.db, { partnerId: unpublished.id, after: 0, limit: 10 });
    expect(whole.events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it("prunes only up to the lowest position of an active or throttled webhook endpoint", async () => {
    const partner = await seedPartner(t.db, { shops: 1 });
    const store = createWebhookStore(t.db);
    const make = async (status: string, position: number) => {
      const { endpoint } = await store.create(partner.id, "test", { url: "https://hooks.example.com/x" });
      await t.db.query("UPDATE webhook_endpoints SET status = $2 WHERE id = $1", [endpoint.id, status]);
      await t.db.query("UPDATE webhook_positions SET position = $2 WHERE endpoint_id = $1", [
        endpoint.id,
        position,
      ]);
    };
    await createOrders(t.db, partner.id, partner.shops, 6);
    await t.db.query("INSERT INTO bridge_cursors (partner_id, published_seq) VALUES ($1, 6)", [partner.id]);
    await make("active", 4);
    await make("throttled", 2);
    // Neither a disabled nor a pending endpoint holds retention back.
    await make("disabled", 0);
    await make("pending", 0);

    const future = new Date(Date.now() + 3 * 86_400_000);
    expect((await pruneHistory(t.db, 1, future)).eventsDeleted).toBe(2);
    const rest = await readEvents(t.db, { partnerId: partner.id, after: 2, limit: 10 });
    expect(rest.events.map((e) => e.seq)).toEqual([3, 4, 5, 6]);

    // The throttled endpoint catches up: retention follows the lowest position, now the active one's.
    await t.db.query(
      "UPDATE webhook_positions SET position = 6 FROM webhook_endpoints e WHERE e.id = endpoint_id AND e.status = 'throttled'",
    );
    expect((await pruneHistory(t.db, 1, future)).eventsDeleted).toBe(2);
    const last = await readEvents(t.db, { partnerId: partner.id, after: 4, limit: 10 });
    expect(last.events.map((e) => e.seq)).toEqual([5, 6]);
  });
});
