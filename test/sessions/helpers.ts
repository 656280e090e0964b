/**
 * Persistent-session test support: what a plain MQTT client received, read
 * as seqs, and the one property every session test asserts: every expected
 * event at least once, in order (a repeat is allowed only of an event
 * already seen, as a re-delivery).
 */
import type { MqttClient } from "mqtt";
import { readLeadingSeq } from "../../src/sessions/replay-plan.ts";

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
