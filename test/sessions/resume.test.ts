/**
 * A persistent session is a position in the log: a plain MQTT client
 * (mqtt.js, no SDK) that goes away and comes back gets what it missed from
 * the log, in order, RETAIN=0, then the live stream with no gap.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOrders, readAll } from "../client/helpers.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import { closed, login, subscribeGranted } from "../support/mqtt.ts";
import { type System, startSystem } from "../support/system.ts";
import { until, waitFor } from "../support/wait.ts";
import { eventSeqs, everyOnceInOrder, recordDeliveries } from "./helpers.ts";

let system: System;
let p: SeededPartner;

beforeAll(async () => {
  system = await startSystem();
  p = await system.seed(2);
}, 120_000);
afterAll(async () => system?.close());

describe("resuming a persistent session (mqtt.js)", () => {
  it("gets the events committed while it was away from the log, RETAIN=0, then live ones, none lost", async () => {
    const clientId = `resume-${Date.now()}`;
    const filter = `partners/${p.id}/shops/shop-1/orders/+`;
    const first = await login(system.mqttUrl, p.devices[0]!, { clientId, clean: false });
    const before = recordDeliveries(first);
    expect(await subscribeGranted(first, filter, 1)).toBe(1);
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1", "shop-2"], 6);
    await until(() => eventSeqs(before).length >= 3, 10_000, "three live events");
    first.end();
    await closed(first);

    await createOrders(system.apiUrl, p.backend.secret, ["shop-1", "shop-2"], 10);
    let sessionPresent: boolean | undefined;
    let after!: ReturnType<typeof recordDeliveries>;
    const again = await login(system.mqttUrl, p.devices[0]!, { clientId, clean: false }, (c) => {
      after = recordDeliveries(c);
      c.once("connect", (connack) => {
        sessionPresent = connack.sessionPresent;
      });
    });
    expect(sessionPresent).toBe(true);
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1", "shop-2"], 4);
    const expected = (await readAll(system.apiUrl, p.backend.secret, "shop-1")).map((e) => e.seq);
    expect(expected).toHaveLength(10);
    await until(() => (eventSeqs(after).at(-1) ?? 0) >= expected.at(-1)!, 10_000, "the last event");
    const result = everyOnceInOrder([...eventSeqs(before), ...eventSeqs(after)], expected);
    expect(result.why).toBeUndefined();
    expect(after.filter((d) => d.retain)).toEqual([]);
    // They came from the log, not from a queue.
    expect(system.running.broker!.stats().sessions.replayed).toBeGreaterThanOrEqual(5);
    again.end();
  });

  it("a session that unsubscribed from everything owes nothing from before its next subscription", async () => {
    const clientId = `unsubscribed-${Date.now()}`;
    const filter = `partners/${p.id}/shops/shop-2/orders/+`;
    const client = await login(system.mqttUrl, p.devices[1]!, { clientId, clean: false });
    expect(await subscribeGranted(client, filter, 1)).toBe(1);
    await client.unsubscribeAsync(filter);
    await createOrders(system.apiUrl, p.backend.secret, ["shop-2"], 3);
    const head = (await readAll(system.apiUrl, p.backend.secret, "shop-2")).at(-1)!.seq;
    await until(() => (system.running.bridge!.publishedSeqs().get(p.id) ?? 0) >= head, 10_000, "published");
    // The durable cursor the new start reads is committed every 100 ms.
    await waitFor("the durable cursor", async () => {
      const [row] = await system.running.db.query<{ published_seq: number }>(
        "SELECT published_seq FROM bridge_cursors WHERE partner_id = $1",
        [p.id],
      );
      return row?.published_seq === head;
    });
    expect(await subscribeGranted(client, filter, 1)).toBe(1);
    client.end();
    await closed(client);
    const { deliveries, sessionPresent } = await (async () => {
      let present = false;
      let got!: ReturnType<typeof recordDeliveries>;
      const again = await login(system.mqttUrl, p.devices[1]!, { clientId, clean: false }, (c) => {
        got = recordDeliveries(c);
        c.once("connect", (connack) => {
          present = connack.sessionPresent;
        });
      });
      await createOrders(system.apiUrl, p.backend.secret, ["shop-2"], 1);
      await until(() => eventSeqs(got).length > 0, 10_000, "the next event");
      again.end();
      return { deliveries: got, sessionPresent: present };
    })();
    expect(sessionPresent).toBe(true);
    expect(eventSeqs(deliveries).every((seq) => seq > head)).toBe(true);
  });
});
