/**
 * The bridge as its own process, killed at random moments and replaced, and
 * two bridges racing for the leader lock. Subscribers hold persistent
 * sessions on the real Mosquitto; for each partner the first occurrence of
 * every seq must be exactly 1..N in order: duplicates allowed, gaps never.
 * Needs Postgres (several processes share one database).
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createOrderStore } from "../../src/store/orders.ts";
import { useCleanups } from "../support/cleanups.ts";
import { type SeededPartner, seedPartner } from "../support/fixtures.ts";
import { createTestDb, DATABASE_URL, type TestDb } from "../support/test-db.ts";
import { until } from "../support/wait.ts";
import { MOSQUITTO_URL, range, recordPartner, type SeqRecorder } from "./helpers.ts";
import { type BridgeProcess, randomMoment, spawnBridge } from "./processes.ts";

const onCleanup = useCleanups();

const kill = async (bridge: BridgeProcess, signal: NodeJS.Signals = "SIGKILL") => {
  if (bridge.child.exitCode === null && bridge.child.signalCode === null) bridge.child.kill(signal);
  await bridge.exited;
};

const persistentSubscriber = async (partner: SeededPartner): Promise<SeqRecorder> => {
  const recorder = await recordPartner(MOSQUITTO_URL, partner.id, {
    clientId: `crash-${partner.id}-${randomBytes(3).toString("hex")}`,
    clean: false,
  });
  onCleanup(async () => {
    await recorder.client.unsubscribeAsync(`partners/${partner.id}/#`).catch(() => undefined);
    await recorder.close();
  });
  return recorder;
};

/** Writes `perPartner` orders for each partner at a steady pace over `durationMs`. */
const steadyLoad = (t: TestDb, partners: SeededPartner[], perPartner: number, durationMs: number) => {
  const orders = createOrderStore(t.db);
  const start = Date.now();
  const interval = durationMs / perPartner;
  let written = 0;
  const done = Promise.all(
    partners.map(async (partner) => {
      for (let i = 0; i < perPartner; i++) {
        const due = start + i * interval - Date.now();
        if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
        await orders.create(
          { partnerId: partner.id, shopId: null },
          { shop_id: partner.shops[i % partner.shops.length]!, items: [{ sku: "espresso", quantity: 1 }] },
        );
        written++;
      }
    }),
  );
  return { done, written: () => written };
};

describe.skipIf(!DATABASE_URL)("bridge process crashes (Postgres, Mosquitto)", () => {
  it("SIGKILLed 10 times under load: every partner's subscriber sees 1..N in order, no gap", async () => {
    const t = await createTestDb();
    onCleanup(() => t.cleanup());
    const partners = await Promise.all(range(1, 5).map(() => seedPartner(t.db, { shops: 2 })));
    const recorders = await Promise.all(partners.map(persistentSubscriber));
    const perPartner = 1_000;
    const load = steadyLoad(t, partners, perPartner, 15_000);

    let current: BridgeProcess | undefined;
    onCleanup(async () => current && kill(current));
    for (let kills = 0; kills < 10; kills++) {
      current = spawnBridge(t.url!, MOSQUITTO_URL);
      await randomMoment(400, 1_800);
      await kill(current);
    }
    current = spawnBridge(t.url!, MOSQUITTO_URL);
    await load.done;
    expect(load.written()).toBe(5 * perPartner);
    for (const recorder of recorders) {
      await until(() => recorder.firstSeen().length >= perPartner, 60_000, "every seq");
    }
    for (const recorder of recorders) {
      expect(recorder.firstSeen()).toEqual(range(1, perPartner));
    }
    const duplicates = recorders.reduce((sum, r) => sum + r.seqs.length - perPartner, 0);
    // At least once: restarts re-publish from the durable cursor, so some duplicates are expected.
    expect(duplicates).toBeGreaterThanOrEqual(0);
  }, 180_000);

  it("two bridges: one leads, the other stands by and takes over within 5 s of a SIGKILL, with no gap", async () => {
    const t = await createTestDb();
    onCleanup(() => t.cleanup());
    const partners = await Promise.all(range(1, 2).map(() => seedPartner(t.db, { shops: 2 })));
    const recorders = await Promise.all(partners.map(persistentSubscriber));
    const a = spawnBridge(t.url!, MOSQUITTO_URL);
    const b = spawnBridge(t.url!, MOSQUITTO_URL);
    onCleanup(async () => Promise.all([kill(a), kill(b)]));
    // Two processes starting under tsx: on a loaded two-core machine that alone took over 20 s.
    // The takeover below is what is timed.
    await until(() => a.roles.length > 0 && b.roles.length > 0, 60_000, "both bridges to choose a role");
    const [leader, standby] = a.roles.at(-1) === "leader" ? [a, b] : [b, a];
    expect(leader.roles.at(-1)).toBe("leader");
    expect(standby.roles).toEqual(["standby"]);

    const load = steadyLoad(t, partners, 300, 6_000);
    await until(() => recorders.every((r) => r.firstSeen().length >= 50), 20_000, "events flowing");
    const killedAt = Date.now();
    await kill(leader);
    await until(() => standby.roles.at(-1) === "leader", 10_000, "the standby to take over");
    expect(Date.now() - killedAt).toBeLessThan(5_000);
    await load.done;
    for (const recorder of recorders)
      await until(() => recorder.firstSeen().length >= 300, 30_000, "every seq");
    for (const recorder of recorders) expect(recorder.firstSeen()).toEqual(range(1, 300));
  }, 120_000);
});
