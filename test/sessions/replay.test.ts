/**
 * What a resumed persistent session is sent, seen on the wire by a plain
 * mqtt.js client: the log it missed (100,000 events of it), live events
 * that arrive during the replay, each subscription at its QoS (QoS 0 is not
 * replayed), RETAIN=0 and DUP=1 with the same packet id for what was in
 * flight, and the end of a session whose position is older than the
 * retained history.
 */
import type mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLeadingSeq } from "../../src/sessions/replay-plan.ts";
import { createOrders } from "../client/helpers.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import { fetchJson } from "../support/http.ts";
import { closed, login } from "../support/mqtt.ts";
import { connectPacket, onPublishes, rawSocket, subscribePacket } from "../support/raw-mqtt.ts";
import { SYSTEM_ADMIN_TOKEN, type System, startSystem } from "../support/system.ts";
import { until } from "../support/wait.ts";
import {
  type Delivery,
  eventSeqs,
  everyOnceInOrder,
  recordDeliveries,
  seedLog,
  seedLogPartner,
} from "./helpers.ts";

let system: System;

beforeAll(async () => {
  system = await startSystem();
}, 120_000);
afterAll(async () => system?.close());

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Logs in with a persistent session; `sessionPresent` of its CONNACK and everything it receives. */
const resume = async (
  credential: { id: string; secret: string },
  clientId: string,
  options: mqtt.IClientOptions = {},
): Promise<{ client: MqttClient; sessionPresent: boolean; deliveries: Delivery[] }> => {
  let sessionPresent = false;
  let deliveries!: Delivery[];
  const client = await login(system.mqttUrl, credential, { clientId, clean: false, ...options }, (c) => {
    deliveries = recordDeliveries(c);
    c.once("connect", (connack) => {
      sessionPresent = connack.sessionPresent;
    });
  });
  return { client, sessionPresent, deliveries };
};

/** Subscribes a new persistent session, then leaves (the broker sees it gone). */
const subscribeAndLeave = async (
  credential: { id: string; secret: string },
  clientId: string,
  filters: Record<string, { qos: 0 | 1 | 2 }>,
): Promise<void> => {
  const client = await login(system.mqttUrl, credential, { clientId, clean: false });
  await client.subscribeAsync(filters);
  client.end();
  await closed(client);
};

/**
 * Pins the partner's state on the ladder: a burst of seeded events is lag the ladder would answer
 * with poll_only, in which nothing is pushed or replayed (a test of its own, below).
 */
const pin = async (partnerId: string, state: "normal" | "poll_only") => {
  const response = await fetchJson(`${system.apiUrl}/admin/v1/partners/${partnerId}/state`, {
    method: "PUT",
    headers: { authorization: `Bearer ${SYSTEM_ADMIN_TOKEN}` },
    body: { state, reason: "a test of replays" },
  });
  expect(response.status).toBe(200);
};

/** The bridge published the partner's log up to `seq` (so the session really was offline while it passed). */
const published = (partnerId: string, seq: number) =>
  until(
    () => (system.running.bridge!.publishedSeqs().get(partnerId) ?? 0) >= seq,
    60_000,
    `seq ${seq} published`,
  ).catch((error: Error) => {
    const bridge = system.running.bridge!;
    throw new Error(
      `${error.message} (bridge ${bridge.role}, published ${bridge.publishedSeqs().get(partnerId)}, sessions ${JSON.stringify(system.running.broker!.stats().sessions)})`,
    );
  });

describe("a resumed session gets the log it missed", () => {
  it("a device offline while 100,000 events pass gets every one, in order", async () => {
    const p = await seedLogPartner(system.running.db, 1);
    await pin(p.id, "normal");
    const clientId = "kiosk-100k";
    await subscribeAndLeave(p.devices[0]!, clientId, {
      [`partners/${p.id}/shops/shop-01/orders/+`]: { qos: 1 },
    });
    await seedLog(system.running.db, p.id, 100_000, 1);
    system.running.bridge!.wake(p.id);
    await published(p.id, 100_000);
    const { client, sessionPresent, deliveries } = await resume(p.devices[0]!, clientId);
    expect(sessionPresent).toBe(true);
    await until(() => deliveries.length >= 100_000, 120_000, "100,000 events").catch((e) => {
      throw new Error(
        `${e.message}: ${deliveries.length} arrived, last ${JSON.stringify(deliveries.at(-1))}, ${JSON.stringify(system.running.broker!.stats().sessions)}`,
      );
    });
    expect(everyOnceInOrder(eventSeqs(deliveries), range(1, 100_000))).toEqual({ ok: true });
    expect(deliveries.filter((d) => d.retain || d.qos !== 1)).toEqual([]);
    client.end();
  }, 240_000);

  it("live events committed during the replay arrive after it, none lost, none out of order", async () => {
    const p = await seedLogPartner(system.running.db, 2);
    await pin(p.id, "normal");
    const clientId = "kiosk-live-during-replay";
    await subscribeAndLeave(p.backend, clientId, { [`partners/${p.id}/#`]: { qos: 1 } });
    await seedLog(system.running.db, p.id, 20_000, 2);
    system.running.bridge!.wake(p.id);
    await published(p.id, 20_000);
    // Orders keep coming while the session resumes and replays.
    const writing = createOrders(system.apiUrl, p.backend.secret, p.shops, 60, 2);
    const { client, sessionPresent, deliveries } = await resume(p.backend, clientId);
    expect(sessionPresent).toBe(true);
    await writing;
    const head = 20_000 + 60;
    await until(() => (eventSeqs(deliveries).at(-1) ?? 0) >= head, 60_000, `seq ${head}`);
    expect(everyOnceInOrder(eventSeqs(deliveries), range(1, head))).toEqual({ ok: true });
    // Live ones did come in while the replay ran: the hold kept them behind it.
    expect(system.running.broker!.stats().sessions.replayed).toBeGreaterThanOrEqual(20_000);
    client.end();
  }, 120_000);
});

describe("QoS, RETAIN and DUP on the wire", () => {
  let p: SeededPartner;
  beforeAll(async () => {
    p = await system.seed(1);
  });

  it("QoS 1 and 2 subscriptions are replayed at their QoS; a QoS 0 one is not (at most once)", async () => {
    const shopTopic = `partners/${p.id}/shops/shop-1/orders/+`;
    for (const qos of [0, 1, 2] as const) {
      await subscribeAndLeave(p.devices[0]!, `qos-${qos}`, { [shopTopic]: { qos } });
    }
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 5);
    const expected = range(1, 5);
    const sessions = await Promise.all(
      ([0, 1, 2] as const).map((qos) => resume(p.devices[0]!, `qos-${qos}`)),
    );
    for (const session of sessions) expect(session.sessionPresent).toBe(true);
    const [q0, q1, q2] = sessions;
    await until(
      () => eventSeqs(q1!.deliveries).length >= 5 && eventSeqs(q2!.deliveries).length >= 5,
      10_000,
      "replays",
    );
    expect(eventSeqs(q1!.deliveries)).toEqual(expected);
    expect(q1!.deliveries.map((d) => d.qos)).toEqual([1, 1, 1, 1, 1]);
    expect(eventSeqs(q2!.deliveries)).toEqual(expected);
    expect(q2!.deliveries.map((d) => d.qos)).toEqual([2, 2, 2, 2, 2]);
    // A live event reaches all three; the QoS 0 session got nothing of what it missed.
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 1);
    await until(
      () => [q0, q1, q2].every((s) => eventSeqs(s!.deliveries).includes(6)),
      10_000,
      "the live event",
    );
    expect(eventSeqs(q0!.deliveries)).toEqual([6]);
    for (const s of sessions) s.client.end();
  });

  it("what was in flight comes again with DUP=1 and its packet id; the rest DUP=0; all RETAIN=0", async () => {
    const clientId = "unacknowledging-kiosk";
    const topic = `partners/${p.id}/shops/shop-1/orders/+`;
    // A client that takes messages and never acknowledges them.
    const ids = new Map<number, number>();
    const stuck = await rawSocket(system.mqttPort);
    const packets = onPublishes(stuck, (publish) => {
      const seq = readLeadingSeq(publish.payload);
      if (seq !== undefined) ids.set(seq, publish.messageId!);
    });
    const { id, secret } = p.devices[0]!;
    stuck.write(connectPacket({ clientId, clean: false, username: id, password: secret }));
    stuck.write(subscribePacket(1, topic, 1));
    await until(() => packets.includes(9), 5_000, "its SUBACK");
    const head = (
      await system.running.db.query<{ head_seq: number }>("SELECT head_seq FROM partners WHERE id = $1", [
        p.id,
      ])
    )[0]!.head_seq;
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 3);
    await until(() => ids.size >= 3, 10_000, "three unacknowledged events");
    stuck.destroy();
    await until(
      () => (system.running.broker!.stats().connected[p.id]?.device ?? 0) === 0,
      5_000,
      "the session offline",
    );
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 2);

    const seen: { seq: number; dup: boolean; retain: boolean; messageId: number | undefined }[] = [];
    const again = await login(system.mqttUrl, p.devices[0]!, { clientId, clean: false }, (c) => {
      c.on("message", (_topic, payload, packet) =>
        seen.push({
          seq: JSON.parse(payload.toString()).seq,
          dup: packet.dup,
          retain: packet.retain,
          messageId: packet.messageId,
        }),
      );
    });
    await until(() => seen.some((s) => s.seq === head + 5), 10_000, "five events");
    // Everything the stuck client was sent (the three, and an earlier one the bridge was still publishing).
    const inFlight = [...ids.keys()];
    // A new session starts where the bridge's durable cursor stood, which may trail the head a
    // little: an event from just before the SUBSCRIBE may come too, as new (DUP=0).
    expect(seen.map((s) => s.seq).filter((seq) => seq > head)).toEqual(range(head + 1, head + 5));
    for (const s of seen) {
      expect(s.retain, `seq ${s.seq}`).toBe(false);
      if (inFlight.includes(s.seq)) {
        expect(s.dup, `seq ${s.seq} was in flight`).toBe(true);
        expect(s.messageId, `seq ${s.seq} keeps its packet id`).toBe(ids.get(s.seq));
      } else expect(s.dup, `seq ${s.seq} is new`).toBe(false);
    }
    again.end();
  });
});

describe("a session that cannot be resumed", () => {
  it("is ended when its position is older than the retained history: sessionPresent=0, counted", async () => {
    const p = await system.seed(1);
    const clientId = "kiosk-on-holiday";
    await subscribeAndLeave(p.devices[0]!, clientId, {
      [`partners/${p.id}/shops/shop-1/orders/+`]: { qos: 1 },
    });
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 3);
    await published(p.id, 3);
    // Retention removed the first two events while the kiosk was away.
    await system.running.db.query("UPDATE partners SET pruned_through_seq = 2 WHERE id = $1", [p.id]);
    await system.running.db.query("DELETE FROM order_events WHERE partner_id = $1 AND seq <= 2", [p.id]);
    const ended = system.running.broker!.stats().sessions.ended.past_retention;
    const { client, sessionPresent, deliveries } = await resume(p.devices[0]!, clientId);
    expect(sessionPresent).toBe(false);
    expect(system.running.broker!.stats().sessions.ended.past_retention).toBe(ended + 1);
    // Nothing was replayed: the client must reload GET /v1/orders, then follow events.
    expect(deliveries).toEqual([]);
    client.end();
  });

  it("is kept when only other shops' events were pruned: a quiet shop's kiosk missed nothing", async () => {
    const p = await system.seed(2);
    const clientId = "quiet-shop-kiosk";
    await subscribeAndLeave(p.devices[0]!, clientId, {
      [`partners/${p.id}/shops/shop-1/orders/+`]: { qos: 1 },
    });
    await createOrders(system.apiUrl, p.backend.secret, ["shop-2"], 3);
    await published(p.id, 3);
    await system.running.db.query("UPDATE partners SET pruned_through_seq = 2 WHERE id = $1", [p.id]);
    await system.running.db.query("DELETE FROM order_events WHERE partner_id = $1 AND seq <= 2", [p.id]);
    const { client, sessionPresent, deliveries } = await resume(p.devices[0]!, clientId);
    expect(sessionPresent).toBe(true);
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 1);
    await until(() => eventSeqs(deliveries).includes(4), 10_000, "the shop's next event");
    client.end();
  });

  it("replays nothing while the partner is poll_only: the client reads the history, as for live events", async () => {
    const p = await system.seed(1);
    const clientId = "kiosk-of-a-lagging-partner";
    await subscribeAndLeave(p.devices[0]!, clientId, {
      [`partners/${p.id}/shops/shop-1/orders/+`]: { qos: 1 },
    });
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 3);
    await published(p.id, 3);
    await pin(p.id, "poll_only");
    const replayed = system.running.broker!.stats().sessions.replayed;
    const { client, sessionPresent, deliveries } = await resume(p.devices[0]!, clientId);
    expect(sessionPresent).toBe(true);
    // Back to normal, a live event follows: anything replayed would have come before it.
    await pin(p.id, "normal");
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 1);
    await until(() => eventSeqs(deliveries).includes(4), 10_000, "the live event");
    expect(eventSeqs(deliveries)).toEqual([4]);
    expect(system.running.broker!.stats().sessions.replayed).toBe(replayed);
    client.end();
  });
});
