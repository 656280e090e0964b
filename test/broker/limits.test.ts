import { randomBytes } from "node:crypto";
import net from "node:net";
import v8 from "node:v8";
import vm from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildDeviceStatusTopic,
  buildOrderEventTopic,
  buildShopCursorTopic,
} from "../../src/domain/topics.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import { closed, collect, login, subscribeGranted } from "../support/mqtt.ts";
import { until } from "../support/wait.ts";
import { type Harness, startHarness } from "./helpers.ts";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

let h: Harness;
let p: SeededPartner;

beforeAll(async () => {
  h = await startHarness({
    maxPacketBytes: 65_536,
    drainTimeoutMs: 1_000,
  });
  p = await h.seed(2);
});
afterAll(async () => {
  await h?.close();
});

const rawConnection = (): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(h.broker.ports.mqtt, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });

const socketClosed = (socket: net.Socket): Promise<void> =>
  socket.closed ? Promise.resolve() : new Promise((resolve) => socket.once("close", () => resolve()));

/** A healthy client still gets a message through the broker. */
const assertHealthy = async () => {
  const sub = await login(h.url, p.backend);
  const got = collect(sub);
  await subscribeGranted(sub, `partners/${p.id}/shops/shop-1/cursor`, 1);
  await h.broker.publish({
    topic: buildShopCursorTopic(p.id, "shop-1"),
    payload: "alive",
    qos: 1,
    retain: false,
  });
  await got.waitFor(1);
  expect(got.messages[0]!.payload).toBe("alive");
  sub.end(true);
};

describe("maximum packet size", () => {
  it("closes a client that publishes a packet over the limit; other clients are unaffected", async () => {
    const device = p.devices[0]!;
    const bystander = await login(h.url, p.backend);
    const big = await login(h.url, device);
    const before = h.broker.stats().oversizeClosed;
    const gone = closed(big);
    big.publish(buildDeviceStatusTopic(p.id, device.id), Buffer.alloc(70_000, 1), { qos: 0 });
    await gone;
    expect(h.broker.stats().oversizeClosed).toBe(before + 1);
    // Just under the limit passes.
    const ok = await login(h.url, device);
    await ok.publishAsync(buildDeviceStatusTopic(p.id, device.id), Buffer.alloc(60_000, 1), { qos: 1 });
    ok.end(true);
    expect(bystander.connected).toBe(true);
    bystander.end(true);
    await assertHealthy();
  });

  it("closes an unauthenticated connection as soon as a header announces 256 MiB, before buffering it", async () => {
    const socket = await rawConnection();
    const before = h.broker.stats().oversizeClosed;
    // CONNECT with Remaining Length 268,435,455, then only a few body bytes.
    socket.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f, 0, 4, 0x4d, 0x51, 0x54, 0x54]));
    await socketClosed(socket);
    expect(h.broker.stats().oversizeClosed).toBe(before + 1);
  });

  it("closes a connection with a malformed Remaining Length (five bytes)", async () => {
    const socket = await rawConnection();
    const before = h.broker.stats().malformedClosed;
    socket.write(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x01]));
    await socketClosed(socket);
    expect(h.broker.stats().malformedClosed).toBe(before + 1);
  });

  it("survives 10,000 random byte frames over fresh connections; memory back to baseline", async () => {
    gc();
    const baseline = process.memoryUsage().heapUsed;
    const total = 10_000;
    const batch = 250;
    for (let start = 0; start < total; start += batch) {
      await Promise.all(
        Array.from({ length: batch }, async () => {
          const socket = await rawConnection();
          socket.on("error", () => undefined);
          const frame = randomBytes(1 + Math.floor(Math.random() * 512));
          // Half of them look like a CONNECT, to get past the first byte.
          if (Math.random() < 0.5) frame[0] = 0x10;
          socket.end(frame);
          await socketClosed(socket);
        }),
      );
    }
    await assertHealthy();
    await until(
      () => {
        gc();
        return process.memoryUsage().heapUsed < baseline + 16 * 1024 * 1024;
      },
      10_000,
      "heap back to baseline",
    );
  }, 90_000);
});

describe("QoS downgrade through wildcards [MQTT-3.8.4-6]", () => {
  it("a QoS 1 wildcard subscriber receives a QoS 2 event at QoS 1, a QoS 0 one at QoS 0", async () => {
    const q1 = await login(h.url, p.backend);
    const q0 = await login(h.url, p.backend);
    const exact = await login(h.url, p.backend);
    const got1 = collect(q1);
    const got0 = collect(q0);
    const gotExact = collect(exact);
    const topic = buildOrderEventTopic(p.id, "shop-2", "created");
    expect(await subscribeGranted(q1, `partners/${p.id}/shops/+/orders/+`, 1)).toBe(1);
    expect(await subscribeGranted(q0, `partners/${p.id}/#`, 0)).toBe(0);
    expect(await subscribeGranted(exact, topic, 2)).toBe(2);
    await h.broker.publish({ topic, payload: "e2", qos: 2, retain: false });
    await Promise.all([got1.waitFor(1), got0.waitFor(1), gotExact.waitFor(1)]);
    expect(got1.messages[0]!.qos).toBe(1);
    expect(got0.messages[0]!.qos).toBe(0);
    expect(gotExact.messages[0]!.qos).toBe(2);
    for (const c of [q1, q0, exact]) c.end(true);
  });
});

describe("slow subscribers", () => {
  it("a subscriber that stops reading holds a healthy one back no longer than the drain timeout", async () => {
    const topic = buildShopCursorTopic(p.id, "shop-1");
    // The stuck subscriber: an mqtt.js client whose socket stops being read after SUBACK.
    const stuck = await login(h.url, p.backend);
    await subscribeGranted(stuck, topic, 0);
    const stream = (stuck as unknown as { stream: net.Socket }).stream;
    stream.removeAllListeners("data");
    stream.pause();

    const healthy = await login(h.url, p.backend);
    const got = collect(healthy);
    await subscribeGranted(healthy, topic, 0);
    const count = 300;
    const payload = Buffer.alloc(60_000, 7);
    const before = h.broker.stats().drainTimeouts;
    const started = Date.now();
    for (let i = 0; i < count; i++) await h.broker.publish({ topic, payload, qos: 0, retain: false });
    await got.waitFor(count);
    const elapsed = Date.now() - started;
    expect(h.broker.stats().drainTimeouts).toBe(before + 1);
    stuck.end(true);
    // Drain timeout is 1 s: the healthy subscriber waited about that, not the Aedes default of 60 s.
    expect(elapsed).toBeLessThan(4_000);
    healthy.end(true);
  }, 30_000);
});
