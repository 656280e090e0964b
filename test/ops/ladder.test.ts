/**
 * The degradation ladder end to end on a real broker and database: a
 * partner whose event deliveries stall goes throttled, then poll_only
 * (cursors still move, events are left to REST), and comes back once
 * healthy; another partner is unaffected; every move is audited.
 *
 * The stall is a fault layer in front of the real broker that holds the
 * sick partner's order-event publishes, as a subscriber that stops
 * acknowledging would hold Aedes's delivery.
 */
import { describe, expect, it } from "vitest";
import type { Publisher } from "../../src/bridge/ports.ts";
import { startPartnerMonitor } from "../../src/ops/partner-monitor.ts";
import { createAccessFeed } from "../../src/store/access-feed.ts";
import { readDeliveryStatus } from "../../src/store/delivery-status.ts";
import { createPartnerStore } from "../../src/store/partners.ts";
import { createOrders, embeddedTarget, range, recordPartner, startBridge } from "../bridge/helpers.ts";
import { useCleanups } from "../support/cleanups.ts";
import { seedPartner } from "../support/fixtures.ts";
import { createTestDb, silentLog } from "../support/test-db.ts";
import { until } from "../support/wait.ts";

const onCleanup = useCleanups();

describe("degradation ladder", () => {
  it("throttles, then stops pushing to, a stalled partner; others flow; it returns when healthy", async () => {
    const t = await createTestDb();
    onCleanup(() => t.cleanup());
    const broker = await embeddedTarget(t.db);
    onCleanup(() => broker.close());
    const sick = await seedPartner(t.db, { shops: 1 });
    const healthy = await seedPartner(t.db, { shops: 1 });

    let stalled = true;
    const faulty: Publisher = {
      publish: (message) =>
        stalled &&
        message.topic.startsWith(`partners/${sick.id}/shops/`) &&
        message.topic.includes("/orders/")
          ? new Promise(() => {}) // never accepted: the bridge's publish timeout fires
          : broker.publisher.publish(message),
    };
    const bridge = await startBridge(t.db, faulty, {
      publishTimeoutMs: 200,
      backoffInitialMs: 50,
      backoffMaxMs: 200,
      throttleRatePerSecond: 20,
    });
    onCleanup(() => bridge.stop());
    const accessFeed = await createAccessFeed(t.db);
    onCleanup(() => accessFeed.close());
    accessFeed.subscribe((change) => {
      if (change.type === "partner_state_changed") bridge.setPartnerState(change.partnerId, change.state);
    });
    const partners = createPartnerStore(t.db);
    const monitor = startPartnerMonitor({
      log: silentLog,
      readStatus: () => readDeliveryStatus(t.db),
      stepLadder: (id, from, to, reason) => partners.stepLadder(id, from, to, reason),
      isLeader: () => bridge.role === "leader",
      policy: {
        throttleLagSeconds: 0.5,
        throttleLagEvents: 1_000,
        pollOnlyLagSeconds: 1.5,
        pollOnlyLagEvents: 10_000,
        recoverAfterSeconds: 1,
      },
      intervalMs: 100,
    });
    onCleanup(async () => monitor.stop());

    const sickRecorder = await recordPartner(broker.url, sick.id, {
      username: sick.backend.id,
      password: sick.backend.secret,
    });
    const healthyRecorder = await recordPartner(broker.url, healthy.id, {
      username: healthy.backend.id,
      password: healthy.backend.secret,
    });
    onCleanup(() => sickRecorder.close());
    onCleanup(() => healthyRecorder.close());
    const stateOf = async (id: string) => (await partners.get(id)).state;
    /** Polls the stored state until it is `wanted`. */
    const untilState = async (id: string, wanted: string) => {
      let state = "";
      await until(
        () => {
          void stateOf(id).then((current) => {
            state = current;
          });
          return state === wanted;
        },
        15_000,
        `${id} to reach ${wanted}`,
      );
    };

    await createOrders(t.db, sick.id, sick.shops, 10);
    await createOrders(t.db, healthy.id, healthy.shops, 10);
    await until(() => healthyRecorder.seqs.length >= 10, 10_000, "the healthy partner's events");

    await untilState(sick.id, "poll_only");
    const moves = (await partners.audit(sick.id, 10)).reverse();
    expect(moves.slice(0, 2).map((m) => [m.from, m.to, m.actor])).toEqual([
      ["normal", "throttled", "monitor"],
      ["throttled", "poll_only", "monitor"],
    ]);
    expect(await stateOf(healthy.id)).toBe("normal");
    expect(sickRecorder.seqs).toEqual([]);
    // Poll-only: no events pushed, but the partner cursor reaches the head so clients know to poll.
    await until(
      () => sickRecorder.cursors.some((c) => c.topic === `partners/${sick.id}/cursor` && c.seq === 10),
      10_000,
    );

    // Healed: it climbs back to normal and new events are pushed again.
    stalled = false;
    await untilState(sick.id, "normal");
    await createOrders(t.db, sick.id, sick.shops, 5);
    await until(() => sickRecorder.seqs.some((seq) => seq >= 15), 10_000, "events pushed again");
    expect(sickRecorder.seqs.filter((seq) => seq > 10)).toEqual(range(11, 15));
    const ups = (await partners.audit(sick.id, 10)).map((m) => m.to);
    expect(ups).toContain("normal");
    expect(healthyRecorder.seqs).toEqual(range(1, 10));
  }, 60_000);

  it("leaves a pinned partner alone", async () => {
    const t = await createTestDb();
    onCleanup(() => t.cleanup());
    const partner = await seedPartner(t.db, { shops: 1 });
    const partners = createPartnerStore(t.db);
    await partners.setState(partner.id, "throttled", {
      actor: "operator",
      reason: "load test",
      pinned: true,
    });
    const monitor = startPartnerMonitor({
      log: silentLog,
      readStatus: () => readDeliveryStatus(t.db),
      stepLadder: (id, from, to, reason) => partners.stepLadder(id, from, to, reason),
      isLeader: () => true,
      policy: { recoverAfterSeconds: 0 },
      intervalMs: 60_000,
    });
    onCleanup(async () => monitor.stop());
    await monitor.evaluate();
    await monitor.evaluate();
    expect((await partners.get(partner.id)).state).toBe("throttled");
    // Unpinned, a healthy partner climbs back.
    await partners.setState(partner.id, "throttled", {
      actor: "operator",
      reason: "unpinned",
      pinned: false,
    });
    await monitor.evaluate();
    await monitor.evaluate();
    expect((await partners.get(partner.id)).state).toBe("normal");
  });
});
