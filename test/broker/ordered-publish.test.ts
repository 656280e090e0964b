/**
 * In-process publishes handed to the broker without waiting for each other
 * (the bridge hands over a whole batch) reach every subscriber complete and
 * in order, whatever mix of QoS 0, QoS 1 and retained messages they are.
 * Stock Aedes drops the earlier message when a later one reaches its
 * emitter first (aedes#994); src/broker/ordered-publish.ts must prevent it.
 */
import { describe, expect, it } from "vitest";
import { useCleanups } from "../support/cleanups.ts";
import { collect, login } from "../support/mqtt.ts";
import { until } from "../support/wait.ts";
import { startHarness } from "./helpers.ts";

const onCleanup = useCleanups();

describe("in-process publishes handed over at once", () => {
  it("arrive complete and in order at clean, persistent, QoS 0 and device subscribers", async () => {
    const h = await startHarness();
    onCleanup(() => h.close());
    const p = await h.seed(2);
    const [shop0, shop1] = p.shops as [string, string];
    const backend = { id: p.backend.id, secret: p.backend.secret };

    const everything = await login(h.url, backend);
    onCleanup(() => everything.endAsync(true));
    await everything.subscribeAsync(`partners/${p.id}/#`, { qos: 1 });
    const persistent = await login(h.url, backend, { clean: false, clientId: `${p.backend.id}-persistent` });
    onCleanup(() => persistent.endAsync(true));
    await persistent.subscribeAsync([`partners/${p.id}/shops/+/orders/+`, `partners/${p.id}/cursor`], {
      qos: 1,
    });
    const qos0 = await login(h.url, backend);
    onCleanup(() => qos0.endAsync(true));
    await qos0.subscribeAsync(`partners/${p.id}/#`, { qos: 0 });
    const device = await login(h.url, { id: p.devices[1]!.id, secret: p.devices[1]!.secret });
    onCleanup(() => device.endAsync(true));
    await device.subscribeAsync(`partners/${p.id}/shops/${shop1}/#`, { qos: 1 });
    const received = {
      everything: collect(everything),
      persistent: collect(persistent),
      qos0: collect(qos0),
      device: collect(device),
    };

    // QoS 1 events, QoS 0 events, retained QoS 1 cursors, on topics with different subscribers.
    const messages = Array.from({ length: 600 }, (_, i) => {
      const shop = i % 2 === 0 ? shop0 : shop1;
      const kind = i % 5;
      if (kind === 3) return { topic: `partners/${p.id}/cursor`, qos: 1 as const, retain: true };
      if (kind === 4)
        return { topic: `partners/${p.id}/shops/${shop}/cursor`, qos: 1 as const, retain: true };
      return {
        topic: `partners/${p.id}/shops/${shop}/orders/${kind === 0 ? "created" : "status_changed"}`,
        qos: (kind === 2 ? 0 : 1) as 0 | 1,
        retain: false,
      };
    }).map((message, i) => ({ ...message, payload: String(i) }));
    await Promise.all(messages.map((message) => h.broker.publish(message)));

    const expected = (keep: (topic: string) => boolean) =>
      messages.filter((m) => keep(m.topic)).map((m) => m.payload);
    const expectations = {
      everything: expected(() => true),
      persistent: expected((topic) => topic.includes("/orders/") || topic.endsWith(`${p.id}/cursor`)),
      qos0: expected(() => true),
      device: expected((topic) => topic.includes(`/shops/${shop1}/`)),
    };
    for (const [name, want] of Object.entries(expectations)) {
      const got = received[name as keyof typeof received];
      // Bounded, so a lost message shows as a diff below instead of a timeout.
      await until(() => got.messages.length >= want.length, 10_000, `${name}: ${want.length} messages`).catch(
        () => undefined,
      );
      expect(
        got.messages.map((m) => m.payload),
        name,
      ).toEqual(want);
    }
    expect(received.qos0.messages.every((m) => m.qos === 0)).toBe(true);
  });
});
