/**
 * The bridge in-process, against real brokers: order, retained cursors,
 * watermark, a held transaction, failure isolation, and embedded vs
 * external (Mosquitto) giving the same result.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { describe, expect, it } from "vitest";
import type { Bridge } from "../../src/bridge/bridge.ts";
import type { Publisher } from "../../src/bridge/ports.ts";
import type { DeliveryLog } from "../../src/domain/delivery.ts";
import { createDeliveryLog } from "../../src/store/delivery-log.ts";
import { createDoorbell, DOORBELL_CHANNEL, encodeRing } from "../../src/store/doorbell.ts";
import { allocateSeq, appendEvent } from "../../src/store/event-log.ts";
import { createOrderStore } from "../../src/store/orders.ts";
import { useCleanups } from "../support/cleanups.ts";
import { seedPartner } from "../support/fixtures.ts";
import { createTestDb, DATABASE_URL, type TestDb } from "../support/test-db.ts";
import { until } from "../support/wait.ts";
import {
  type BrokerTarget,
  createOrders,
  embeddedTarget,
  mosquittoTarget,
  range,
  recordPartner,
  type SeqRecorder,
  startBridge,
} from "./helpers.ts";

const onCleanup = useCleanups();

const setup = async (target: "embedded" | "mosquitto", options: Parameters<typeof startBridge>[2] = {}) => {
  const t: TestDb = await createTestDb();
  onCleanup(() => t.cleanup());
  const broker: BrokerTarget = target === "embedded" ? await embeddedTarget(t.db) : await mosquittoTarget();
  onCleanup(() => broker.close());
  const bridge: Bridge = await startBridge(t.db, broker.publisher, options);
  onCleanup(() => bridge.stop());
  return { t, broker, bridge };
};

const subscribe = async (
  broker: BrokerTarget,
  partner: { id: string; backend: { id: string; secret: string } },
): Promise<SeqRecorder> => {
  const credentials = broker.broker ? { username: partner.backend.id, password: partner.backend.secret } : {};
  const recorder = await recordPartner(broker.url, partner.id, credentials);
  onCleanup(() => recorder.close());
  return recorder;
};

describe.each(["embedded", "mosquitto"] as const)("bridge → %s broker", (target) => {
  it("takes handed-over events only in turn: gaps, late, repeated and stale handovers are read from the log", async () => {
    // No sweep: the handovers are the only wake-ups, so every gap must be filled by reading the log.
    const { t, broker, bridge } = await setup(target, { sweepIntervalMs: 60_000 });
    await until(() => bridge.role === "leader", 5_000, "the bridge to lead");
    const partner = await seedPartner(t.db, { shops: 2 });
    const recorder = await subscribe(broker, partner);
    // The bridge learns of the partner with its first event.
    await createOrders(t.db, partner.id, partner.shops, 1);
    bridge.wake(partner.id);
    await until(() => recorder.seqs.includes(1), 15_000, "seq 1");
    const orders = createOrderStore(t.db);
    const committed = [];
    for (let i = 0; i < 30; i++) {
      const change = await orders.create(
        { partnerId: partner.id, shopId: null },
        { shop_id: partner.shops[i % 2]!, items: [{ sku: "latte", quantity: 1 }] },
      );
      committed.push(change.event!);
    }
    // Every third event is never handed over (as if committed in another process); the rest
    // arrive newest first, some twice.
    const handed = committed.filter((event) => event.seq % 3 !== 0).reverse();
    for (const event of [...handed, ...handed.slice(0, 5)]) bridge.committed(event);
    await until(() => recorder.seqs.length >= 31, 15_000, "31 events");
    expect(recorder.firstSeen()).toEqual(range(1, 31));
    // Handed over again once published: nothing is published twice for it.
    const before = recorder.seqs.length;
    bridge.committed(committed[3]!);
    bridge.committed(committed[29]!);
    await createOrders(t.db, partner.id, partner.shops, 1);
    bridge.wake(partner.id);
    await until(() => recorder.seqs.includes(32), 15_000, "seq 32");
    expect(recorder.seqs.slice(before)).toEqual([32]);
  });

  it("publishes every event in seq order, then the retained cursors", async () => {
    const { t, broker, bridge } = await setup(target);
    const partners = [await seedPartner(t.db, { shops: 3 }), await seedPartner(t.db, { shops: 2 })];
    const recorders = await Promise.all(partners.map((p) => subscribe(broker, p)));
    await Promise.all(partners.map((p) => createOrders(t.db, p.id, p.shops, 120)));
    for (const p of partners) bridge.wake(p.id);
    for (const recorder of recorders) await until(() => recorder.seqs.length >= 120, 15_000, "120 events");
    for (const [i, recorder] of recorders.entries()) {
      expect(recorder.seqs).toEqual(range(1, 120));
      expect(recorder.events.every((e) => e.partner_id === partners[i]!.id)).toBe(true);
      // The partner cursor reaches the head, and is retained for late subscribers.
      await until(
        () => recorder.cursors.some((c) => c.topic.endsWith(`${partners[i]!.id}/cursor`) && c.seq === 120),
        15_000,
      );
    }
    const late = await subscribe(broker, partners[0]!);
    await until(
      () => late.cursors.some((c) => c.retain && c.topic === `partners/${partners[0]!.id}/cursor`),
      15_000,
    );
    const retained = late.cursors.find((c) => c.topic === `partners/${partners[0]!.id}/cursor`)!;
    expect(retained.seq).toBe(120);
    // Each shop cursor reaches that shop's latest seq, and never goes back once there.
    for (const [index, shopId] of partners[0]!.shops.entries()) {
      const lastOfShop = Math.max(...range(1, 120).filter((seq) => (seq - 1) % 3 === index));
      const ofShop = () => late.cursors.filter((c) => c.topic.endsWith(`/shops/${shopId}/cursor`));
      await until(() => ofShop().some((c) => c.seq === lastOfShop), 15_000, `shop ${shopId}'s cursor`);
      const reached = ofShop().findIndex((c) => c.seq === lastOfShop);
      expect(
        ofShop()
          .slice(reached)
          .every((c) => c.seq === lastOfShop),
      ).toBe(true);
    }
  });

  it("re-publishes an idle partner's cursor on schedule with a fresh published_at (the watermark)", async () => {
    const { t, broker } = await setup(target, { watermarkMs: 300 });
    const partner = await seedPartner(t.db, { shops: 1 });
    const recorder = await subscribe(broker, partner);
    const partnerCursors = () => recorder.cursors.filter((c) => c.topic === `partners/${partner.id}/cursor`);
    await until(() => partnerCursors().length >= 4, 10_000, "four watermarks");
    const stamps = partnerCursors().map((c) => Date.parse(c.published_at));
    for (let i = 1; i < stamps.length; i++) expect(stamps[i]!).toBeGreaterThan(stamps[i - 1]!);
    const gaps = stamps.slice(2).map((stamp, i) => stamp - stamps[i + 1]!);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(200);
      expect(gap).toBeLessThan(3_000);
    }
    expect(partnerCursors().every((c) => c.seq === 0)).toBe(true);
  });
});

describe("bridge: failure isolation", () => {
  it("a partner whose publishes fail backs off alone while the others keep flowing, then catches up in order", async () => {
    const t = await createTestDb();
    onCleanup(() => t.cleanup());
    const broker = await embeddedTarget(t.db);
    onCleanup(() => broker.close());
    const sick = await seedPartner(t.db, { shops: 1 });
    const healthy = await seedPartner(t.db, { shops: 1 });
    // A fault layer in front of the real broker: the sick partner's messages are refused until healed.
    let healed = false;
    let refused = 0;
    const faulty: Publisher = {
      publish: async (message) => {
        if (!healed && message.topic.startsWith(`partners/${sick.id}/`)) {
          refused++;
          throw new Error("injected publish failure");
        }
        return broker.publisher.publish(message);
      },
    };
    const bridge = await startBridge(t.db, faulty, { backoffInitialMs: 20, backoffMaxMs: 200 });
    onCleanup(() => bridge.stop());
    const errors: string[] = [];
    bridge.on("partner-error", (e) => errors.push(e.partnerId));
    const sickRecorder = await subscribe(broker, sick);
    const healthyRecorder = await subscribe(broker, healthy);

    await createOrders(t.db, sick.id, sick.shops, 20);
    await createOrders(t.db, healthy.id, healthy.shops, 20);
    await until(() => healthyRecorder.seqs.length >= 20, 10_000, "healthy partner's events");
    await until(() => refused >= 5, 10_000, "several refused attempts");
    expect(sickRecorder.seqs).toEqual([]);
    expect(new Set(errors)).toEqual(new Set([sick.id]));

    healed = true;
    await until(() => sickRecorder.seqs.length >= 20, 10_000, "sick partner catching up");
    expect(sickRecorder.seqs).toEqual(range(1, 20));
    expect(healthyRecorder.seqs).toEqual(range(1, 20));
  });
});

describe("bridge: batches in flight", () => {
  /**
   * A layer in front of the real broker that hands each of one partner's events to it at once
   * but keeps the broker's acceptance from the bridge until the test lets it through (or turns
   * it into a failure): what a broker that is slow to answer looks like to the bridge. A seq in
   * `refuse` fails instead, before reaching the broker, as on a lost connection. Only an
   * event's first publish is held or refused; a re-publish is accepted at once.
   */
  const withHeldAcceptance = (publisher: Publisher, partnerId: string) => {
    const held = new Map<number, { pass: () => void; fail: (error: Error) => void }>();
    const refuse = new Set<number>();
    const refused: number[] = [];
    const attempted = new Set<number>();
    const layer: Publisher = {
      publish: async (message) => {
        const ours =
          message.topic.startsWith(`partners/${partnerId}/shops/`) && !message.topic.endsWith("/cursor");
        const seq = ours ? (JSON.parse(message.payload) as { seq: number }).seq : 0;
        const first = ours && !attempted.has(seq);
        if (ours) attempted.add(seq);
        if (first && refuse.has(seq)) {
          refused.push(seq);
          throw new Error(`injected: seq ${seq} never reached the broker`);
        }
        await publisher.publish(message);
        if (first) await new Promise<void>((pass, fail) => held.set(seq, { pass, fail }));
      },
    };
    return { layer, held, refuse, refused };
  };

  const setupHeld = async (options: Parameters<typeof startBridge>[2] = {}) => {
    const t = await createTestDb();
    onCleanup(() => t.cleanup());
    const broker = await embeddedTarget(t.db);
    onCleanup(() => broker.close());
    const partner = await seedPartner(t.db, { shops: 1 });
    const { layer, held, refuse, refused } = withHeldAcceptance(broker.publisher, partner.id);
    // A publish held by the test must not time out on a slow machine.
    const bridge = await startBridge(t.db, layer, {
      sweepIntervalMs: 60_000,
      publishTimeoutMs: 120_000,
      ...options,
    });
    onCleanup(() => bridge.stop());
    // Run first: a failed test may leave acceptances held, and stop() waits for what is in flight.
    onCleanup(async () => {
      for (const { pass } of held.values()) pass();
    });
    await until(() => bridge.role === "leader", 5_000, "the bridge to lead");
    const recorder = await subscribe(broker, partner);
    const orders = createOrderStore(t.db);
    const commit = async () => {
      const change = await orders.create(
        { partnerId: partner.id, shopId: null },
        { shop_id: partner.shops[0]!, items: [{ sku: "latte", quantity: 1 }] },
      );
      bridge.committed(change.event!);
      return change.event!;
    };
    const published: number[] = [];
    bridge.on("published", (batch) => {
      if (batch.partnerId === partner.id) published.push(...range(batch.fromSeq, batch.toSeq));
    });
    return { t, partner, bridge, recorder, held, refuse, refused, commit, published };
  };
  const turns = async (n: number) => {
    for (let turn = 0; turn < n; turn++) await new Promise((resolve) => setImmediate(resolve));
  };

  it("hands the next event over while the broker has not accepted the one before, and moves the cursor in order", async () => {
    const { partner, bridge, recorder, held, commit, published } = await setupHeld();
    await commit();
    await until(() => held.has(1), 10_000, "seq 1 handed to the broker");
    held.get(1)!.pass();
    await until(() => published.includes(1), 5_000, "seq 1 accepted");
    await commit();
    await until(() => held.has(2), 10_000, "seq 2 handed to the broker");
    // Seq 2 is not accepted yet: seq 3 goes out anyway, and nothing moves past 1.
    await commit();
    await until(() => held.has(3), 10_000, "seq 3 handed over while seq 2 waits");
    await until(() => recorder.seqs.includes(3), 10_000, "seq 3 delivered");
    expect(recorder.seqs).toEqual([1, 2, 3]);
    expect(bridge.publishedSeqs().get(partner.id)).toBe(1);
    // Accepted out of order: the cursor still moves in order, once both are.
    held.get(3)!.pass();
    // Everything here is in-process: a few turns of the event loop settle what seq 3's acceptance starts.
    await turns(5);
    expect(bridge.publishedSeqs().get(partner.id)).toBe(1);
    held.get(2)!.pass();
    await until(() => bridge.publishedSeqs().get(partner.id) === 3, 5_000, "cursor at 3");
    expect(published).toEqual([1, 2, 3]);
  });

  it("after a failure, hands nothing more over until what failed went out again: no event overtakes it", async () => {
    const { partner, bridge, recorder, held, refuse, refused, commit, published } = await setupHeld({
      backoffInitialMs: 20,
    });
    await commit();
    await until(() => held.has(1) && recorder.seqs.includes(1), 10_000, "seq 1 delivered");
    // Seq 1 is delivered and waits for its acceptance; seq 2 never reaches the broker.
    refuse.add(2);
    await commit();
    await until(() => refused.includes(2), 10_000, "seq 2 refused");
    await commit();
    await turns(5);
    expect(held.has(3)).toBe(false);
    expect(recorder.seqs).toEqual([1]);
    held.get(1)!.pass();
    await until(() => held.has(3), 10_000, "seq 3 handed over after seq 2 again");
    held.get(3)!.pass();
    await until(() => bridge.publishedSeqs().get(partner.id) === 3, 10_000, "cursor at 3");
    await until(() => recorder.seqs.includes(3), 5_000, "seq 3 delivered");
    expect(recorder.seqs).toEqual([1, 2, 3]);
    expect(published).toEqual([1, 2, 3]);
  });

  it("keeps at most a batch of messages unaccepted", async () => {
    const { t, partner, bridge, held, commit } = await setupHeld({ batchSize: 4 });
    await commit();
    await until(() => held.has(1), 10_000, "seq 1 in flight");
    // Nine more at once, read from the log in one go while seq 1 waits: only three fit.
    await createOrders(t.db, partner.id, partner.shops, 9);
    bridge.wake(partner.id);
    await until(() => held.size >= 4, 10_000, "a batch's worth in flight");
    await turns(5);
    expect([...held.keys()]).toEqual([1, 2, 3, 4]);
    for (let seq = 1; seq <= 10; seq++) {
      await until(() => held.has(seq), 10_000, `seq ${seq} handed over`);
      held.get(seq)!.pass();
    }
    await until(() => bridge.publishedSeqs().get(partner.id) === 10, 10_000, "cursor at 10");
  });

  it("when one in flight fails, nothing after it counts as published: the pump re-publishes from there", async () => {
    const { partner, bridge, recorder, held, commit, published } = await setupHeld({
      backoffInitialMs: 20,
    });
    const errors: string[] = [];
    bridge.on("partner-error", (e) => errors.push(e.error.message));
    await commit();
    await until(() => held.has(1), 10_000, "seq 1 handed to the broker");
    held.get(1)!.pass();
    await until(() => published.includes(1), 5_000, "seq 1 accepted");
    await commit();
    await commit();
    await until(() => held.has(2) && held.has(3), 10_000, "seqs 2 and 3 in flight");
    held.get(3)!.pass();
    held.get(2)!.fail(new Error("injected: the broker refused seq 2"));
    // Backs off, then re-publishes 2 and 3 (accepted at once now), in order.
    await until(() => bridge.publishedSeqs().get(partner.id) === 3, 10_000, "cursor at 3");
    expect(errors).toEqual(["injected: the broker refused seq 2"]);
    expect(published).toEqual([1, 2, 3]);
    expect(recorder.firstSeen()).toEqual([1, 2, 3]);
    await until(() => recorder.seqs.length >= 5, 5_000, "the re-published events");
    expect(recorder.seqs).toEqual([1, 2, 3, 2, 3]);
  });
});

describe.skipIf(!DATABASE_URL)("bridge: a transaction holding its seq open (Postgres)", () => {
  it("delays that partner's later events, never skips them, and other partners keep flowing", async () => {
    const { t, broker } = await setup("embedded");
    const slow = await seedPartner(t.db, { shops: 1 });
    const other = await seedPartner(t.db, { shops: 1 });
    const slowRecorder = await subscribe(broker, slow);
    const otherRecorder = await subscribe(broker, other);
    await createOrders(t.db, slow.id, slow.shops, 3);
    await until(() => slowRecorder.seqs.length >= 3, 10_000, "first events");

    // Hold seq 4 open in a transaction until we release it.
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let held = false;
    const holder = t.db.transaction(async (tx) => {
      const seq = await allocateSeq(tx, slow.id);
      held = true;
      const now = new Date();
      await released;
      await tx.query(
        `INSERT INTO orders (id, partner_id, shop_id, status, items, created_at, updated_at, last_seq)
         VALUES ('00000000-0000-4000-8000-000000000001', $1, $2, 'created', '[]', $3, $3, $4)`,
        [slow.id, slow.shops[0], now, seq],
      );
      await appendEvent(tx, {
        partnerId: slow.id,
        shopId: slow.shops[0]!,
        orderId: "00000000-0000-4000-8000-000000000001",
        type: "order.created",
        seq,
        occurredAt: now,
        order: {
          id: "00000000-0000-4000-8000-000000000001",
          partner_id: slow.id,
          shop_id: slow.shops[0]!,
          status: "created",
          items: [],
          created_at: now.toISOString(),
          updated_at: now.toISOString(),
          last_seq: seq,
        },
      });
      return seq;
    });
    await until(() => held, 5_000, "the held transaction to take its seq");
    // A later writer of the same partner queues behind it; another partner does not.
    const later = createOrderStore(t.db).create(
      { partnerId: slow.id, shopId: null },
      { shop_id: slow.shops[0]!, items: [{ sku: "mocha", quantity: 1 }] },
    );
    await createOrders(t.db, other.id, other.shops, 5);
    await until(() => otherRecorder.seqs.length >= 5, 10_000, "the other partner's events");
    expect(slowRecorder.seqs).toEqual([1, 2, 3]);

    release();
    expect(await holder).toBe(4);
    const created = await later;
    expect(created.order.last_seq).toBe(5);
    await until(() => slowRecorder.seqs.length >= 5, 10_000, "the held and the later event");
    expect(slowRecorder.seqs).toEqual([1, 2, 3, 4, 5]);
  });
});

describe.skipIf(!DATABASE_URL)("bridge: the doorbell's carried events (Postgres)", () => {
  /** A bridge whose only wake-ups are rings (no sweep), counting its reads of the log. */
  const setupCounted = async () => {
    const t: TestDb = await createTestDb();
    onCleanup(() => t.cleanup());
    const broker = await embeddedTarget(t.db);
    onCleanup(() => broker.close());
    const source = await createDeliveryLog(t.db);
    const reads = { count: 0 };
    const readAfter = source.readAfter.bind(source);
    const counted: DeliveryLog = {
      ...source,
      readAfter: (positions, limit) => {
        reads.count++;
        return readAfter(positions, limit);
      },
    };
    const bridge = await startBridge(t.db, broker.publisher, { sweepIntervalMs: 60_000, source: counted });
    onCleanup(() => bridge.stop());
    await until(() => bridge.role === "leader", 5_000, "the bridge to lead");
    const partner = await seedPartner(t.db, { shops: 1 });
    const recorder = await subscribe(broker, partner);
    const orders = createOrderStore(t.db);
    const create = async () =>
      (
        await orders.create(
          { partnerId: partner.id, shopId: null },
          { shop_id: partner.shops[0]!, items: [{ sku: "latte", quantity: 1 }] },
        )
      ).event!;
    return { t, partner, recorder, create, reads };
  };

  it("publishes the events a ring from its own role carries, without reading them back", async () => {
    const { t, recorder, create, reads } = await setupCounted();
    // Rung from this process's own role, as another brewcast process would; the first ring from a
    // sender not yet looked up only names the partner, and the bridge reads its events.
    const doorbell = createDoorbell(t.db);
    for (let seq = 1; seq <= 20; seq++) {
      doorbell.ring(await create());
      await until(() => recorder.seqs.includes(seq), 15_000, `seq ${seq}`);
    }
    expect(recorder.firstSeen()).toEqual(range(1, 20));
    expect(reads.count).toBeLessThanOrEqual(5);
  });

  it("never publishes an event carried by a ring from another role: the log's event goes out", async () => {
    const { t, partner, recorder, create } = await setupCounted();
    const role = `brewcast_test_forger_${randomBytes(4).toString("hex")}`;
    await t.db.exec(`CREATE ROLE ${role} LOGIN`);
    onCleanup(() => t.db.exec(`DROP ROLE ${role}`));
    const asForger = new URL(t.url!);
    asForger.username = role;
    const forger = new pg.Client({ connectionString: asForger.toString() });
    await forger.connect();
    onCleanup(() => forger.end());
    const doorbell = createDoorbell(t.db);
    let previous = await create();
    doorbell.ring(previous);
    await until(() => recorder.seqs.includes(1), 15_000, "seq 1");
    // Each round: the other role rings with a made-up next event before the real one commits (from
    // the second round on, the bridge has looked the forger up); then the real one is rung.
    for (let seq = 2; seq <= 10; seq++) {
      const forged = { ...previous, seq, prev_shop_seq: seq - 1, order_id: "forged" };
      await forger.query("SELECT pg_notify($1, $2)", [
        DOORBELL_CHANNEL,
        encodeRing(new Map([[partner.id, [forged]]])),
      ]);
      previous = await create();
      doorbell.ring(previous);
      await until(() => recorder.seqs.includes(seq), 15_000, `seq ${seq}`);
      expect(recorder.events.find((event) => event.seq === seq)).toEqual(previous);
    }
    expect(recorder.firstSeen()).toEqual(range(1, 10));
    expect(recorder.events.some((event) => event.order_id === "forged")).toBe(false);
  });
});
