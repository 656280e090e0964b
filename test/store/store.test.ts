/**
 * The store on both adapters (pg when DATABASE_URL is set, and always
 * PGlite): the same tests, so the embedded database is not a second-class
 * citizen. One database per adapter for the file (an embedded one takes
 * seconds to start); every test uses its own partners and channels.
 */
import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DoorbellRing } from "../../src/domain/delivery.ts";
import type { OrderEvent } from "../../src/domain/events.ts";
import type { Order } from "../../src/domain/orders.ts";
import { createCredentialStore } from "../../src/store/credentials.ts";
import type { Queryable } from "../../src/store/db.ts";
import { createDeliveryLog } from "../../src/store/delivery-log.ts";
import { createDoorbell, DOORBELL_CHANNEL, decodeRing, encodeRing } from "../../src/store/doorbell.ts";
import { allocateSeq, appendEvent, readEpoch, readEvents } from "../../src/store/event-log.ts";
import { loadMigrations, migrate } from "../../src/store/migrate.ts";
import { createSessionLog } from "../../src/store/mqtt-sessions.ts";
import { createOrderStore } from "../../src/store/orders.ts";
import { createPgDb } from "../../src/store/pg-db.ts";
import { runCli } from "../support/brewcast-process.ts";
import { seedPartner, uniqueId } from "../support/fixtures.ts";
import {
  AVAILABLE_ADAPTERS,
  createTestDb,
  DATABASE_URL,
  silentLog,
  type TestDb,
} from "../support/test-db.ts";
import { waitFor } from "../support/wait.ts";

const item = [{ sku: "latte", quantity: 1 }];

describe.each(AVAILABLE_ADAPTERS)("store on %s", (kind) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb(kind);
  });
  afterAll(async () => t?.cleanup());

  const footprint = async (q: Queryable, partnerId: string) => {
    const [row] = await q.query(
      `SELECT p.head_seq,
         (SELECT count(*)::int FROM order_events e WHERE e.partner_id = p.id) AS events,
         (SELECT count(*)::int FROM orders o WHERE o.partner_id = p.id) AS orders,
         (SELECT count(*)::int FROM idempotency_keys k WHERE k.partner_id = p.id) AS keys,
         (SELECT json_agg(s.last_seq ORDER BY s.id)::text FROM shops s WHERE s.partner_id = p.id) AS shop_seqs
       FROM partners p WHERE p.id = $1`,
      [partnerId],
    );
    return row;
  };

  it("migrations are idempotent: a second run applies nothing and keeps the data and the epoch", async () => {
    const epoch = await readEpoch(t.db);
    const p = await seedPartner(t.db, { shops: 1 });
    await createOrderStore(t.db).create(
      { partnerId: p.id, shopId: null },
      { shop_id: p.shops[0]!, items: item },
    );
    expect(await migrate(t.db)).toEqual([]);
    expect(await migrate(t.db)).toEqual([]);
    const versions = await t.db.query<{ version: number }>(
      "SELECT version FROM schema_migrations ORDER BY version",
    );
    expect(versions.map((v) => v.version)).toEqual(loadMigrations().map((m) => m.version));
    const [log] = await t.db.query<{ n: number; epoch: string }>(
      "SELECT count(*)::int AS n, min(epoch::text) AS epoch FROM event_log",
    );
    expect(log).toEqual({ n: 1, epoch });
    expect(await footprint(t.db, p.id)).toMatchObject({ head_seq: 1, events: 1, orders: 1 });
  });

  it("listen/notify: a committed notification arrives, a rolled-back one never does, unlisten stops delivery", async () => {
    const channel = `test_${randomBytes(6).toString("hex")}`;
    const first: string[] = [];
    const unlisten = await t.db.listen(channel, (payload) => first.push(payload));
    await t.db.notify(channel, "hello");
    await waitFor("the first notification", () => first.length >= 1);
    await expect(
      t.db.transaction(async (tx) => {
        await tx.query("SELECT pg_notify($1, $2)", [channel, "rolled-back"]);
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    await t.db.transaction(async (tx) => {
      await tx.query("SELECT pg_notify($1, $2)", [channel, "committed"]);
    });
    await waitFor("the committed notification", () => first.length >= 2);
    expect(first).toEqual(["hello", "committed"]);

    await unlisten();
    const second: string[] = [];
    const unlistenSecond = await t.db.listen(channel, (payload) => second.push(payload));
    await t.db.notify(channel, "later");
    await waitFor("the notification to the new listener", () => second.length >= 1);
    expect(second).toEqual(["later"]);
    expect(first).toEqual(["hello", "committed"]);
    await unlistenSecond();
  });

  it("a transaction that throws leaves nothing: no order, no event, no seq consumed", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    const before = await footprint(t.db, p.id);
    await expect(
      t.db.transaction(async (tx) => {
        const seq = await allocateSeq(tx, p.id);
        const now = new Date();
        const order: Order = {
          id: crypto.randomUUID(),
          partner_id: p.id,
          shop_id: p.shops[0]!,
          status: "created",
          items: item,
          created_at: now.toISOString(),
          updated_at: now.toISOString(),
          last_seq: seq,
        };
        await tx.query(
          `INSERT INTO orders (id, partner_id, shop_id, status, items, created_at, updated_at, last_seq)
           VALUES ($1, $2, $3, 'created', $4, $5, $5, $6)`,
          [order.id, p.id, order.shop_id, JSON.stringify(item), now, seq],
        );
        await appendEvent(tx, {
          partnerId: p.id,
          shopId: order.shop_id,
          orderId: order.id,
          type: "order.created",
          seq,
          occurredAt: now,
          order,
        });
        expect(await footprint(tx, p.id)).toMatchObject({ head_seq: 1, events: 1, orders: 1 });
        throw new Error("fail after writing");
      }),
    ).rejects.toThrow("fail after writing");
    expect(await footprint(t.db, p.id)).toEqual(before);

    // A refused create with an Idempotency-Key leaves neither the key nor a seq behind.
    const orders = createOrderStore(t.db);
    await expect(
      orders.create({ partnerId: p.id, shopId: null }, { shop_id: "no-such-shop", items: item }, "key-1"),
    ).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
    expect(await footprint(t.db, p.id)).toEqual(before);
    const created = await orders.create(
      { partnerId: p.id, shopId: null },
      { shop_id: p.shops[0]!, items: item },
      "key-1",
    );
    expect(created.order.last_seq).toBe(1);
    // The event's order is built from the values written (migration 0009), not read back:
    // it must be the order as stored, to the millisecond.
    expect(created.event?.order).toEqual(
      await orders.get({ partnerId: p.id, shopId: null }, created.order.id),
    );
    expect(created.event?.occurred_at).toBe(created.order.created_at);
    // A shop of another partner is as unknown as no shop.
    const other = await seedPartner(t.db, { shops: 2 });
    await expect(
      orders.create({ partnerId: p.id, shopId: null }, { shop_id: other.shops[1]!, items: item }),
    ).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
    expect(await footprint(t.db, p.id)).toMatchObject({ head_seq: 1, events: 1, orders: 1 });
  });

  it("seq is per partner, gapless, and prev_shop_seq links each shop; refusals consume no seq", async () => {
    const a = await seedPartner(t.db, { shops: 2 });
    const b = await seedPartner(t.db, { shops: 1 });
    const orders = createOrderStore(t.db);
    const scopeA = { partnerId: a.id, shopId: null };
    const seqs: number[] = [];
    const first = await orders.create(scopeA, { shop_id: a.shops[0]!, items: item });
    seqs.push(first.event!.seq);
    seqs.push(
      (await orders.create({ partnerId: b.id, shopId: null }, { shop_id: b.shops[0]!, items: item })).event!
        .seq,
    );
    seqs.push((await orders.create(scopeA, { shop_id: a.shops[1]!, items: item })).event!.seq);
    // Same status, an illegal move, an unknown order: no event, no seq.
    expect((await orders.setStatus(scopeA, first.order.id, "created")).event).toBeUndefined();
    await expect(orders.setStatus(scopeA, first.order.id, "ready")).rejects.toMatchObject({
      code: "ILLEGAL_TRANSITION",
    });
    await expect(orders.setStatus(scopeA, crypto.randomUUID(), "accepted")).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    seqs.push((await orders.setStatus(scopeA, first.order.id, "accepted")).event!.seq);
    seqs.push((await orders.create(scopeA, { shop_id: a.shops[1]!, items: item })).event!.seq);
    expect(seqs).toEqual([1, 1, 2, 3, 4]);

    const page = await readEvents(t.db, { partnerId: a.id, after: 0, limit: 100 });
    expect(page.head_seq).toBe(4);
    expect(page.events.map((e) => [e.seq, e.shop_id, e.prev_shop_seq])).toEqual([
      [1, a.shops[0], null],
      [2, a.shops[1], null],
      [3, a.shops[0], 1],
      [4, a.shops[1], 2],
    ]);
    const shopPage = await readEvents(t.db, { partnerId: a.id, shopId: a.shops[1]!, after: 0, limit: 100 });
    expect(shopPage.events.map((e) => e.seq)).toEqual([2, 4]);
    expect(shopPage.head_seq).toBe(4);
    await expect(t.db.transaction(async (tx) => allocateSeq(tx, uniqueId("missing")))).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
  });

  it("an event read as JSON text (what a session replay sends) is the event GET /v1/events returns", async () => {
    const p = await seedPartner(t.db, { shops: 2 });
    const orders = createOrderStore(t.db);
    const scope = { partnerId: p.id, shopId: null };
    for (let i = 0; i < 6; i++) {
      const { order } = await orders.create(scope, {
        shop_id: p.shops[i % 2]!,
        items: [{ sku: `sku.${i}_x-Y`, quantity: i + 1 }, ...item],
      });
      await orders.setStatus(scope, order.id, i % 2 === 0 ? "accepted" : "cancelled");
    }
    const { events } = await readEvents(t.db, { partnerId: p.id, after: 0, limit: 100 });
    const texts = await createSessionLog(t.db).read(p.id, 0, 100);
    expect(texts.map((e) => [e.seq, e.shopId, e.type])).toEqual(
      events.map((e) => [e.seq, e.shop_id, e.type]),
    );
    // Same keys in the same order, same values (the snapshot's spacing is Postgres's own).
    const parsed = texts.map((e) => JSON.parse(e.json.toString()));
    expect(parsed.map((e) => Object.keys(e))).toEqual(events.map((e) => Object.keys(e)));
    expect(parsed).toEqual(events);
    expect(events).toHaveLength(12);
    // A time with microseconds (the write path keeps milliseconds; a hand-written row may not):
    // both say its milliseconds, truncated.
    await t.db.query(
      "UPDATE order_events SET occurred_at = '2026-12-03 10:00:00.123789+00' WHERE partner_id = $1 AND seq = 1",
      [p.id],
    );
    const [text] = await createSessionLog(t.db).read(p.id, 0, 1);
    const [event] = (await readEvents(t.db, { partnerId: p.id, after: 0, limit: 1 })).events;
    expect(event!.occurred_at).toBe("2026-12-03T10:00:00.123Z");
    expect(JSON.parse(text!.json.toString())).toEqual(event);
  });

  it("concurrent creates on one partner get exactly 1..n, with occurred_at in seq order", async () => {
    const p = await seedPartner(t.db, { shops: 3 });
    const orders = createOrderStore(t.db);
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        orders.create({ partnerId: p.id, shopId: null }, { shop_id: p.shops[i % 3]!, items: item }),
      ),
    );
    expect(results.map((r) => r.event!.seq).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    const page = await readEvents(t.db, { partnerId: p.id, after: 0, limit: 100 });
    const last = new Map<string, number>();
    for (const event of page.events) {
      expect(event.prev_shop_seq).toBe(last.get(event.shop_id) ?? null);
      last.set(event.shop_id, event.seq);
    }
    // occurred_at is taken under the partner lock: it never goes backwards along the seqs.
    const times = page.events.map((e) => Date.parse(e.occurred_at));
    expect(times).toEqual([...times].sort((x, y) => x - y));
  });

  /** An event as the store hands it to `onCommitted` (the doorbell only carries it). */
  const EPOCH = "00000000-0000-4000-8000-000000000000";
  const eventOf = (partnerId: string, seq: number): OrderEvent => ({
    seq,
    epoch: EPOCH,
    type: "order.created",
    partner_id: partnerId,
    shop_id: "s1",
    order_id: `${partnerId}-o${seq}`,
    occurred_at: new Date(Date.UTC(2026, 11, 1, 10, 0, seq)).toISOString(),
    prev_shop_seq: seq > 1 ? seq - 1 : null,
    order: { note: "x".repeat(200) } as unknown as OrderEvent["order"],
  });

  it("the doorbell coalesces a burst of rings: every partner is named, in two notifications under the NOTIFY limit, each partner's events carried all or none", async () => {
    const heard: { ring: DoorbellRing; bytes: number }[] = [];
    const unlisten = await t.db.listen(DOORBELL_CHANNEL, (payload) =>
      heard.push({ ring: decodeRing(payload, true, EPOCH), bytes: Buffer.byteLength(payload) }),
    );
    const failures: unknown[] = [];
    // A long interval, so the burst's second NOTIFY waits for flush() rather than the timer.
    const doorbell = createDoorbell(t.db, (error) => failures.push(error), 60_000);
    const partners = Array.from({ length: 7 }, (_, i) => uniqueId(`bell${i}`));
    const rung: OrderEvent[] = [];
    for (let i = 0; i < 85; i++) {
      const event = eventOf(partners[i % partners.length]!, Math.floor(i / partners.length) + 1);
      rung.push(event);
      doorbell.ring(event);
    }
    await doorbell.flush();
    const named = () =>
      new Set(heard.flatMap(({ ring }) => (ring.partnerIds === "all" ? [] : ring.partnerIds)));
    await waitFor("every partner named", () => partners.every((id) => named().has(id)));
    await unlisten();
    expect(failures).toEqual([]);
    // The first ring goes out at once, with its event; the other 84 wait for it and leave together.
    expect(heard).toHaveLength(2);
    expect(heard[0]!.ring).toEqual({ partnerIds: [partners[0]], events: [rung[0]] });
    const second = heard[1]!;
    expect(second.ring.partnerIds).toEqual(expect.arrayContaining(partners));
    expect(second.bytes).toBeLessThan(8_000);
    // ~12 events of ~450 bytes a partner: some partners fit, with every one of their events
    // in seq order; the others are only named (the bridge reads them).
    const carriedPartners = new Set(second.ring.events.map((event) => event.partner_id));
    expect(carriedPartners.size).toBeGreaterThan(0);
    expect(carriedPartners.size).toBeLessThan(partners.length);
    for (const partnerId of carriedPartners) {
      expect(second.ring.events.filter((event) => event.partner_id === partnerId)).toEqual(
        rung.slice(1).filter((event) => event.partner_id === partnerId),
      );
    }
  });

  it("a ring names everyone past 100 partners, and a malformed or untrusted ring carries no events", () => {
    const many = new Map(Array.from({ length: 101 }, (_, i) => [`p${i}`, [eventOf(`p${i}`, 1)]] as const));
    expect(decodeRing(encodeRing(many), true, EPOCH)).toEqual({ partnerIds: "all", events: [] });
    const one = encodeRing(new Map([["p1", [eventOf("p1", 1)]]]));
    expect(decodeRing(one, true, EPOCH).events).toEqual([eventOf("p1", 1)]);
    expect(decodeRing(one, false, EPOCH)).toEqual({ partnerIds: ["p1"], events: [] });
    // An event of a partner the ring does not name is not taken.
    expect(
      decodeRing(JSON.stringify({ partners: ["p1"], events: [eventOf("p2", 1)] }), true, EPOCH).events,
    ).toEqual([]);
    // Nor one of another log (its epoch), or one the bridge could not route or commit.
    const carried = (event: unknown) =>
      decodeRing(JSON.stringify({ partners: ["p1"], events: [event] }), true, EPOCH).events;
    expect(carried(eventOf("p1", 1))).toHaveLength(1);
    for (const bad of [
      { ...eventOf("p1", 1), epoch: "10000000-0000-4000-8000-000000000000" },
      { ...eventOf("p1", 1), type: "order.deleted" },
      { ...eventOf("p1", 1), seq: 0 },
      { ...eventOf("p1", 1), occurred_at: "yesterday" },
      { ...eventOf("p1", 1), shop_id: null },
      null,
    ]) {
      expect(carried(bad)).toEqual([]);
    }
    for (const junk of ["p1,p2", "", "null", '{"partners":[1]}', '{"events":[]}']) {
      expect(decodeRing(junk, true, EPOCH)).toEqual({ partnerIds: "all", events: [] });
    }
  });

  it.skipIf(kind !== "pg")(
    "a notification says whether its sender is logged in as the database's own role",
    async () => {
      const heard: { payload: string; own: boolean }[] = [];
      const channel = `brewcast_test_${randomBytes(4).toString("hex")}`;
      const unlisten = await t.db.listen(channel, (payload, own) => heard.push({ payload, own }));
      const role = `brewcast_test_other_${randomBytes(4).toString("hex")}`;
      await t.db.exec(`CREATE ROLE ${role} LOGIN`);
      const asOther = new URL(t.url!);
      asOther.username = role;
      const other = new pg.Client({ connectionString: asOther.toString() });
      await other.connect();
      const own = new pg.Client({ connectionString: t.url! });
      await own.connect();
      try {
        // Each sender is unknown at first (false) and looked up for the next notification.
        await waitFor("our own role recognised", async () => {
          await other.query(`NOTIFY ${channel}, 'other'`);
          await own.query(`NOTIFY ${channel}, 'own'`);
          return heard.some((h) => h.payload === "own" && h.own);
        });
        // The other role's backend was looked up as early as ours: it is still not trusted.
        await other.query(`NOTIFY ${channel}, 'other, later'`);
        await waitFor("the later notification", () => heard.some((h) => h.payload === "other, later"));
        const fromOther = heard.filter((h) => h.payload.startsWith("other"));
        expect(fromOther.length).toBeGreaterThan(1);
        expect(fromOther.every((h) => !h.own)).toBe(true);
      } finally {
        await own.end();
        await other.end();
        await unlisten();
        await t.db.exec(`DROP ROLE ${role}`);
      }
    },
  );

  it("the bridge's durable cursors of several partners move forward in one statement and never back", async () => {
    const p = await seedPartner(t.db, { shops: 3 });
    const q = await seedPartner(t.db, { shops: 1 });
    const [a, b, c] = p.shops as [string, string, string];
    const bridgeLog = await createDeliveryLog(t.db);
    const at = (second: number) => `2026-11-29T10:00:0${second}.000Z`;
    const cursor = (second: number) => ({ seq: second, occurredAt: at(second) });
    const cursors = async (partnerId: string) => {
      const [partner] = (await bridgeLog.loadPartners()).filter((each) => each.partnerId === partnerId);
      return { published: partner!.published, shops: Object.fromEntries(partner!.shops) };
    };

    await bridgeLog.commitCursors([
      {
        partnerId: p.id,
        partner: cursor(5),
        shops: new Map([
          [a, cursor(4)],
          [b, cursor(5)],
        ]),
      },
      { partnerId: q.id, partner: cursor(2), shops: new Map([[q.shops[0]!, cursor(2)]]) },
    ]);
    expect(await cursors(p.id)).toEqual({
      published: cursor(5),
      shops: { [a]: cursor(4), [b]: cursor(5), [c]: { seq: 0, occurredAt: null } },
    });
    expect(await cursors(q.id)).toEqual({ published: cursor(2), shops: { [q.shops[0]!]: cursor(2) } });
    // Older cursors (and a commit without shops) move nothing back; a newer shop cursor moves.
    await bridgeLog.commitCursors([
      { partnerId: p.id, partner: cursor(3), shops: new Map([[a, cursor(3)]]) },
    ]);
    await bridgeLog.commitCursors([{ partnerId: p.id, partner: cursor(2), shops: new Map() }]);
    await bridgeLog.commitCursors([
      { partnerId: q.id, partner: cursor(1), shops: new Map() },
      { partnerId: p.id, partner: cursor(7), shops: new Map([[c, cursor(7)]]) },
    ]);
    expect(await cursors(p.id)).toEqual({
      published: cursor(7),
      shops: { [a]: cursor(4), [b]: cursor(5), [c]: cursor(7) },
    });
    expect((await cursors(q.id)).published).toEqual(cursor(2));
  });

  it("the bridge reads ahead for several partners at once, in seq order and up to a limit each", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    const q = await seedPartner(t.db, { shops: 1 });
    const orders = createOrderStore(t.db);
    for (let i = 0; i < 5; i++) {
      await orders.create({ partnerId: p.id, shopId: null }, { shop_id: p.shops[0]!, items: item });
      await orders.create({ partnerId: q.id, shopId: null }, { shop_id: q.shops[0]!, items: item });
    }
    const bridgeLog = await createDeliveryLog(t.db);
    const events = await bridgeLog.readAfter(
      [
        { partnerId: p.id, afterSeq: 1 },
        { partnerId: q.id, afterSeq: 3 },
      ],
      3,
    );
    expect(events.map((e) => `${e.partner_id === p.id ? "p" : "q"}${e.seq}`)).toEqual([
      "p2",
      "p3",
      "p4",
      "q4",
      "q5",
    ]);
    // The same events the REST history serves.
    const page = await readEvents(t.db, { partnerId: p.id, after: 1, limit: 3 });
    expect(events.slice(0, 3)).toEqual(page.events);
  });

  it("the epoch is a UUID, the same in every event and read, and survives migrations and reconnects", async () => {
    const [row] = await t.db.query<{ epoch: string }>("SELECT epoch::text AS epoch FROM event_log");
    const epoch = row!.epoch;
    expect(epoch).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(await readEpoch(t.db)).toBe(epoch);
    const p = await seedPartner(t.db, { shops: 1 });
    const change = await createOrderStore(t.db).create(
      { partnerId: p.id, shopId: null },
      { shop_id: p.shops[0]!, items: item },
    );
    expect(change.event!.epoch).toBe(epoch);
    await migrate(t.db);
    const page = await readEvents(t.db, { partnerId: p.id, after: 0, limit: 10 });
    expect(page.epoch).toBe(epoch);
    expect(page.events[0]!.epoch).toBe(epoch);
    if (t.url) {
      // A second pool on the same database (another process, in effect) reads the same epoch.
      const other = await createPgDb({ connectionString: t.url, log: silentLog, max: 1 });
      try {
        expect(await readEpoch(other)).toBe(epoch);
      } finally {
        await other.close();
      }
    }
  });

  it("a credential's secret is never stored in clear, anywhere in the database", async () => {
    const p = await seedPartner(t.db, { shops: 1 });
    const secrets = [p.backend.secret, p.devices[0]!.secret];
    const tables = await t.db.query<{ name: string }>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    expect(tables.map((x) => x.name)).toContain("credentials");
    let dump = "";
    for (const { name } of tables) {
      const rows = await t.db.query<{ row: string }>(`SELECT t::text AS row FROM "${name}" t`);
      dump += rows.map((r) => r.row).join("\n");
    }
    expect(dump).toContain(p.backend.id);
    for (const secret of secrets) {
      const body = secret.replace(/^bcs_/, "");
      // Neither the secret, nor its random part, nor any long piece of it, in text or as hex bytes.
      for (const piece of [
        secret,
        body,
        body.slice(8, 24),
        Buffer.from(body, "base64url").toString("hex").slice(0, 24),
      ]) {
        expect(dump).not.toContain(piece);
      }
    }
    const [stored] = await t.db.query<{ secret_hash: Buffer }>(
      "SELECT secret_hash FROM credentials WHERE id = $1",
      [p.backend.id],
    );
    expect(
      Buffer.from(stored!.secret_hash).equals(createHash("sha256").update(p.backend.secret).digest()),
    ).toBe(true);
    const verifier = createCredentialStore(t.db);
    expect(await verifier.verifySecret(p.backend.id, p.backend.secret)).toMatchObject({ ok: true });
    expect(await verifier.verifySecret(p.backend.id, `${p.backend.secret}x`)).toEqual({
      ok: false,
      refusal: "bad_credentials",
    });
  });
});

describe.runIf(DATABASE_URL)("migrations from two processes at once (pg)", () => {
  it("both exit 0 and every migration is applied exactly once", async () => {
    const name = `brewcast_test_mig_${randomBytes(5).toString("hex")}`;
    const adminClient = new pg.Client({ connectionString: DATABASE_URL });
    await adminClient.connect();
    await adminClient.query(`CREATE DATABASE ${name}`);
    const url = new URL(DATABASE_URL!);
    url.pathname = `/${name}`;
    try {
      const env = { DATABASE_URL: url.toString(), LOG_LEVEL: "warn" };
      const [one, two] = await Promise.all([runCli(["migrate"], env), runCli(["migrate"], env)]);
      expect(one, one.stderr).toMatchObject({ code: 0 });
      expect(two, two.stderr).toMatchObject({ code: 0 });
      const check = new pg.Client({ connectionString: url.toString() });
      await check.connect();
      try {
        const { rows } = await check.query<{ version: number; n: number }>(
          "SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version ORDER BY version",
        );
        expect(rows).toEqual(loadMigrations().map((m) => ({ version: m.version, n: 1 })));
        const { rows: logs } = await check.query<{ n: number }>("SELECT count(*)::int AS n FROM event_log");
        expect(logs).toEqual([{ n: 1 }]);
      } finally {
        await check.end();
      }
    } finally {
      await adminClient.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await adminClient.end();
    }
  }, 60_000);
});
