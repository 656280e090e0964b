/**
 * Persistent-session test support: what a plain MQTT client received, read
 * as seqs, and the one property every session test asserts: every expected
 * event at least once, in order (a repeat is allowed only of an event
 * already seen, as a re-delivery).
 */
import type { MqttClient } from "mqtt";
import { seedEventsSql } from "../../bench/seed-log.ts";
import { readLeadingSeq } from "../../src/sessions/replay-plan.ts";
import { createCredentialStore } from "../../src/store/credentials.ts";
import type { Db } from "../../src/store/db.ts";
import { createPartnerStore } from "../../src/store/partners.ts";
import { type SeededPartner, uniqueId } from "../support/fixtures.ts";

export interface Delivery {
  topic: string;
  seq: number | undefined;
  qos: number;
  retain: boolean;
  dup: boolean;
}

/** Records every PUBLISH a client receives, with its flags. */
export const recordDeliveries = (client: MqttClient) => {
  const deliveries: Delivery[] = [];
  client.on("message", (topic, payload, packet) => {
    deliveries.push({
      topic,
      seq: readLeadingSeq(payload),
      qos: packet.qos,
      retain: packet.retain,
      dup: packet.dup,
    });
  });
  return deliveries;
};

/** The event seqs received, in arrival order. */
export const eventSeqs = (deliveries: Delivery[]): number[] =>
  deliveries.filter((d) => d.topic.includes("/orders/") && d.seq !== undefined).map((d) => d.seq!);

/**
 * Checks that `received` holds every seq of `expected` at least once, in order: dropping each
 * repeat (a seq not above the highest seen so far) leaves exactly `expected`.
 */
export const everyOnceInOrder = (received: number[], expected: number[]): { ok: boolean; why?: string } => {
  const firsts: number[] = [];
  let highest = 0;
  for (const seq of received) {
    if (seq <= highest) continue;
    firsts.push(seq);
    highest = seq;
  }
  if (firsts.length === expected.length && firsts.every((seq, i) => seq === expected[i])) return { ok: true };
  const missing = expected.filter((seq) => !firsts.includes(seq));
  const extra = firsts.filter((seq) => !expected.includes(seq));
  return {
    ok: false,
    why: `missing ${JSON.stringify(missing.slice(0, 20))}, unexpected ${JSON.stringify(extra.slice(0, 20))}`,
  };
};

/**
 * Seeds `count` events into the log of a partner with SQL (bench/seed-log.ts: one statement, not
 * `count` transactions), in shops `shop-01`…, and moves the partner's and shops' heads as a writer
 * would. The bridge then publishes them as if they had been committed one by one.
 */
export const seedLog = async (
  db: Db,
  partnerId: string,
  count: number,
  shops: number,
  after = 0,
): Promise<void> => {
  await db.query(
    seedEventsSql({ shops, eventsPerOrder: 4, step: "1 millisecond" }).replace(
      "generate_series(1, $2::int)",
      `generate_series(${after + 1}, ${after} + $2::int)`,
    ),
    [[partnerId], count, new Date()],
  );
  await db.query("UPDATE partners SET head_seq = $2 WHERE id = $1", [partnerId, after + count]);
  await db.query(
    `UPDATE shops s SET last_seq = (SELECT max(seq) FROM order_events e WHERE e.partner_id = s.partner_id AND e.shop_id = s.id)
     WHERE s.partner_id = $1`,
    [partnerId],
  );
};

/** A partner with shops `shop-01`…, as seedLog names them, a backend credential and one device per shop. */
export const seedLogPartner = async (db: Db, shops: number): Promise<SeededPartner> => {
  const partners = createPartnerStore(db);
  const credentials = createCredentialStore(db);
  const id = uniqueId("s");
  await partners.create(id, `Partner ${id}`);
  const shopIds = Array.from({ length: shops }, (_, i) => `shop-${String(i + 1).padStart(2, "0")}`);
  for (const shopId of shopIds) await partners.createShop(id, shopId, shopId);
  const backend = await credentials.create(id, { kind: "backend" });
  const devices: SeededPartner["devices"] = [];
  for (const shopId of shopIds) {
    const device = await credentials.create(id, { kind: "device", shop_id: shopId });
    devices.push({ id: device.credential.id, secret: device.secret });
  }
  return { id, shops: shopIds, backend: { id: backend.credential.id, secret: backend.secret }, devices };
};
