/**
 * Tenant isolation and the doors before login (issue 14), each finding
 * tried as the attacker or the new user tried it: a refused subscription in
 * a resumed session, a scope narrowed while a session is offline, an empty
 * client id with CleanSession=0, secrets in the log, a throttle that locked
 * out bystanders, ill-formed UTF-8, and connections that never log in.
 */
import { randomBytes } from "node:crypto";
import type net from "node:net";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildOrderEventTopic } from "../../src/domain/topics.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import { runMosquittoClient } from "../support/mosquitto.ts";
import { closed, collect, connackCode, login, subscribeGranted } from "../support/mqtt.ts";
import {
  connectPacket,
  publishPacket,
  rawSocket,
  readBytes,
  readUntilClosed,
  subscribePacket,
} from "../support/raw-mqtt.ts";
import { REDIS_URL } from "../support/test-db.ts";
import { until } from "../support/wait.ts";
import { type Harness, startHarness } from "./helpers.ts";

const event = (p: SeededPartner, shop: string, payload: string) => ({
  topic: buildOrderEventTopic(p.id, shop, "created"),
  payload,
  qos: 1 as const,
  retain: false,
});

const persistences = [
  { name: "embedded (in-memory persistence)", overrides: {} },
  ...(REDIS_URL
    ? [
        {
          name: "REDIS_URL",
          overrides: { redisUrl: REDIS_URL, redisPrefix: `brewcast-test-${randomBytes(4).toString("hex")}:` },
        },
      ]
    : []),
];

describe.each(persistences)(
  "a refused subscription never reaches a resumed session ($name)",
  ({ overrides }) => {
    let h: Harness;
    let beta: SeededPartner;
    let acme: SeededPartner;
    beforeAll(async () => {
      h = await startHarness(overrides);
      beta = await h.seed(1);
      acme = await h.seed(1);
    });
    afterAll(async () => {
      await h?.close();
    });

    const offline = () =>
      until(() => (h.broker.stats().connected[beta.id]?.backend ?? 0) === 0, 5_000, "the session offline");

    it("mqtt.js: SUBACK 1, 128; after a reconnect only the allowed filter delivers", async () => {
      const clientId = `mixed-${randomBytes(4).toString("hex")}`;
      const first = await login(h.url, beta.backend, { clientId, clean: false });
      const granted = await first
        .subscribeAsync({ [`partners/${beta.id}/#`]: { qos: 1 }, [`partners/${acme.id}/#`]: { qos: 1 } })
        .catch((error: { packet: { granted: number[] } }) => error.packet.granted.map((qos) => ({ qos })));
      expect(granted.map((g) => g.qos)).toEqual([1, 128]);
      first.end(true);
      await closed(first);
      await offline();
      // Another partner's event first, then one of beta's own, both while the session is offline.
      await h.broker.publish(event(acme, acme.shops[0]!, "acme-secret"));
      await h.broker.publish(event(beta, beta.shops[0]!, "beta-own"));
      let got!: ReturnType<typeof collect>;
      const again = await login(h.url, beta.backend, { clientId, clean: false }, (c) => {
        got = collect(c);
      });
      await h.broker.publish(event(beta, beta.shops[0]!, "beta-live"));
      await until(() => got.messages.some((m) => m.payload === "beta-live"), 5_000, "the live event");
      expect(got.messages.filter((m) => m.topic.startsWith(`partners/${acme.id}/`))).toEqual([]);
      again.end(true);
    });

    it("mosquitto_sub -c: Subscribed 1, 128; the resumed session prints no other partner's event", async () => {
      const name = `mosq-${randomBytes(4).toString("hex")}`;
      const common = [
        "-h",
        "127.0.0.1",
        "-p",
        String(h.broker.ports.mqtt),
        "-u",
        beta.backend.id,
        "-P",
        beta.backend.secret,
      ];
      const first = runMosquittoClient(
        "mosquitto_sub",
        [
          ...common,
          ...["-c", "-i", name, "-q", "1", "-d"],
          ...["-t", `partners/${beta.id}/#`, "-t", `partners/${acme.id}/#`],
        ],
        { lineBuffered: true },
      );
      await until(() => first.stdout.some((l) => l.includes("Subscribed")), 10_000, "SUBACK").catch((e) => {
        throw new Error(`${e.message}: ${first.stdout.join("\n")} ${first.stderr()}`);
      });
      expect(first.stdout.find((l) => l.includes("Subscribed"))).toMatch(/: 1, 128$/);
      first.child.kill("SIGINT");
      await first.exit;
      await offline();
      await h.broker.publish(event(acme, acme.shops[0]!, "acme-secret"));
      await h.broker.publish(event(beta, beta.shops[0]!, "beta-own"));
      const again = runMosquittoClient("mosquitto_sub", [
        ...common,
        ...["-c", "-i", name, "-q", "1", "-v", "-C", "1"],
        ...["-t", `partners/${beta.id}/#`, "-t", `partners/${acme.id}/#`],
      ]);
      const live = setInterval(() => void h.broker.publish(event(beta, beta.shops[0]!, "beta-live")), 200);
      try {
        expect(await again.exit).toBe(0);
      } finally {
        clearInterval(live);
      }
      expect(again.stdout[0]).toMatch(new RegExp(`^partners/${beta.id}/`));
    });
  },
);

describe("the doors of a broker", () => {
  let h: Harness;
  let p: SeededPartner;
  const lines: string[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });

  beforeAll(async () => {
    h = await startHarness({ log });
    p = await h.seed(2);
  });
  afterAll(async () => {
    await h?.close();
  });

  it("a scope narrowed while the session is offline: the stored subscription is dropped and counted", async () => {
    const q = await h.seed(2);
    const clientId = `narrow-${randomBytes(4).toString("hex")}`;
    const first = await login(h.url, q.backend, { clientId, clean: false });
    expect(await subscribeGranted(first, `partners/${q.id}/#`, 1)).toBe(1);
    first.end(true);
    await closed(first);
    await until(() => (h.broker.stats().connected[q.id]?.backend ?? 0) === 0, 5_000, "offline");
    // The credential now covers one shop only (as a re-issued device credential would).
    await h.testDb.db.query("UPDATE credentials SET kind = 'device', shop_id = $2 WHERE id = $1", [
      q.backend.id,
      "shop-1",
    ]);
    h.credentials.clearCache();
    await h.broker.publish(event(q, "shop-2", "other-shop"));
    await h.broker.publish(event(q, "shop-1", "own-shop-queued"));
    const dropped = h.broker.stats().restoredSubscriptionsDropped;
    let got!: ReturnType<typeof collect>;
    let sessionPresent: boolean | undefined;
    const again = await login(h.url, q.backend, { clientId, clean: false }, (c) => {
      got = collect(c);
      c.once("connect", (connack) => {
        sessionPresent = connack.sessionPresent;
      });
    });
    expect(sessionPresent).toBe(false);
    expect(h.broker.stats().restoredSubscriptionsDropped).toBe(dropped + 1);
    expect(await subscribeGranted(again, `partners/${q.id}/shops/shop-1/orders/+`, 1)).toBe(1);
    await h.broker.publish(event(q, "shop-1", "own-shop-live"));
    await until(() => got.messages.some((m) => m.payload === "own-shop-live"), 5_000, "the live event");
    expect(got.messages.filter((m) => m.topic.includes("/shops/shop-2/"))).toEqual([]);
    again.end(true);
  });

  it("an empty client id with CleanSession=0 gets CONNACK 2 [MQTT-3.1.3-8]; with CleanSession=1 it logs in", async () => {
    const refused = await rawSocket(h.broker.ports.mqtt);
    const all = readUntilClosed(refused);
    refused.write(
      connectPacket({ clientId: "", clean: false, username: p.backend.id, password: p.backend.secret }),
    );
    // CONNACK: 0x20, remaining length 2, session present 0, return code 2; then the connection closes.
    expect([...(await all)]).toEqual([0x20, 2, 0, 2]);

    const accepted = await rawSocket(h.broker.ports.mqtt);
    accepted.write(
      connectPacket({ clientId: "", clean: true, username: p.backend.id, password: p.backend.secret }),
    );
    expect([...(await readBytes(accepted, 4))]).toEqual([0x20, 2, 0, 0]);
    accepted.destroy();
  });

  it("a swapped login logs neither the secret nor more than a few hundred bytes of what was sent", async () => {
    lines.length = 0;
    expect(await connackCode(h.url, { username: p.backend.secret, password: p.backend.id })).toBe(4);
    expect(await connackCode(h.url, { username: "u".repeat(60_000), password: "x" })).toBe(4);
    expect(await connackCode(h.url, { username: p.devices[0]!.id, password: "wrong" })).toBe(4);
    const refusals = lines.filter((l) => l.includes("mqtt login refused")).map((l) => JSON.parse(l));
    expect(refusals).toHaveLength(3);
    expect(lines.join("\n")).not.toContain(p.backend.secret);
    expect(refusals[0].username).toMatch(/^sha256:[0-9a-f]{12}$/);
    expect(refusals[1].username).toMatch(/^sha256:[0-9a-f]{12}$/);
    // A credential id is what an operator needs to see, so it is logged as it is.
    expect(refusals[2].username).toBe(p.devices[0]!.id);
    for (const line of lines) expect(line.length).toBeLessThan(1_000);
  });

  it("a refused publish with a 60 kB client id and topic logs at most a few hundred bytes of each", async () => {
    lines.length = 0;
    const client = await login(h.url, p.backend, { clientId: "c".repeat(60_000) });
    client.publish(`partners/${p.id}/${"t".repeat(60_000)}`, "x");
    await closed(client);
    await until(() => lines.some((l) => l.includes("mqtt publish refused")), 5_000, "the refusal logged");
    for (const line of lines) expect(line.length).toBeLessThan(1_000);
  });

  it("the login throttle slows the guesser, not another credential behind the same address", async () => {
    const throttled = await h.extraBroker({ loginFailureLimit: 3 });
    const q = await h.seed(1);
    for (let i = 0; i < 3; i++) {
      expect(await connackCode(throttled.url, { username: q.backend.id, password: "wrong" })).toBe(4);
    }
    // The guessed credential is refused even with its right secret: the socket closes, no CONNACK…
    expect(await connackCode(throttled.url, { username: q.backend.id, password: q.backend.secret })).not.toBe(
      0,
    );
    expect(throttled.broker.stats().throttledConnects).toBe(1);
    // …while a bystander logging in from the same address is not affected.
    const bystander = await login(throttled.url, q.devices[0]!);
    bystander.end(true);
  });

  it.each([
    [
      "a SUBSCRIBE filter",
      (s: net.Socket) => s.write(subscribePacket(1, Buffer.from([0x61, 0xff, 0x2f, 0x23]), 1)),
    ],
    ["a PUBLISH topic", (s: net.Socket) => s.write(publishPacket(Buffer.from([0x70, 0xc3, 0x28]), "x"))],
    [
      "a SUBSCRIBE filter holding U+0000",
      (s: net.Socket) => s.write(subscribePacket(1, "partners/\u0000/#", 1)),
    ],
  ])("ill-formed UTF-8 in %s closes the connection [MQTT-1.5.3-1]", async (_what, send) => {
    const socket = await rawSocket(h.broker.ports.mqtt);
    const all = readUntilClosed(socket);
    socket.write(
      connectPacket({ clientId: "utf8", clean: true, username: p.backend.id, password: p.backend.secret }),
    );
    await readBytes(socket, 4);
    const before = h.broker.stats().malformedClosed;
    send(socket);
    const received = await all;
    // Only the CONNACK came back: no SUBACK, no other answer.
    expect(received.length).toBe(4);
    expect(h.broker.stats().malformedClosed).toBe(before + 1);
  });

  it("an ill-formed client id in CONNECT closes the connection with no CONNACK", async () => {
    const socket = await rawSocket(h.broker.ports.mqtt);
    const all = readUntilClosed(socket);
    socket.write(
      connectPacket({
        clientId: Buffer.from([0xed, 0xa0, 0x80]),
        clean: true,
        username: p.backend.id,
        password: p.backend.secret,
      }),
    );
    expect((await all).length).toBe(0);
  });
});

describe("limits before login", () => {
  let h: Harness;
  let p: SeededPartner;
  beforeAll(async () => {
    h = await startHarness({ maxConnections: 40, maxPendingPerAddress: 5, connectTimeoutMs: 30_000 });
    p = await h.seed(1);
  });
  afterAll(async () => {
    await h?.close();
  });

  it("one address holds at most maxPendingPerAddress connections that have not logged in; others log in", async () => {
    const idle: net.Socket[] = [];
    for (let i = 0; i < 5; i++) idle.push(await rawSocket(h.broker.ports.mqtt, "127.0.0.2"));
    const sixth = await rawSocket(h.broker.ports.mqtt, "127.0.0.2");
    expect((await readUntilClosed(sixth)).length).toBe(0);
    expect(h.broker.stats().connectionsRefused.address_pending).toBeGreaterThanOrEqual(1);
    // Another address is not affected, and a login frees its slot.
    const device = await login(h.url, p.devices[0]!);
    expect(device.connected).toBe(true);
    device.end(true);
    for (const socket of idle) socket.destroy();
  });

  it("a connection that sends no CONNECT is closed after connectTimeoutMs", async () => {
    const quick = await h.extraBroker({ connectTimeoutMs: 500 });
    const socket = await rawSocket(quick.broker.ports.mqtt, "127.0.0.3");
    const opened = Date.now();
    await readUntilClosed(socket);
    // Aedes 1.2.0's default was 30 s; the test's broker says 500 ms.
    expect(Date.now() - opened).toBeLessThan(5_000);
  });

  it("the listener holds at most maxConnections; the next one is closed at accept", async () => {
    const held: net.Socket[] = [];
    // Ten addresses, at most five sockets each: under the per-address cap, over the listener's.
    const addresses = Array.from({ length: 10 }, (_, i) => `127.0.0.${10 + i}`);
    const closedEarly: Promise<Buffer>[] = [];
    const refusedBefore = h.broker.stats().connectionsRefused.listener_full;
    for (let i = 0; i < 45; i++) {
      const socket = await rawSocket(h.broker.ports.mqtt, addresses[i % addresses.length]);
      held.push(socket);
      closedEarly.push(readUntilClosed(socket));
    }
    await until(
      () => h.broker.stats().connectionsRefused.listener_full >= refusedBefore + 5,
      5_000,
      "the listener's cap",
    );
    for (const socket of held) socket.destroy();
    await Promise.all(closedEarly);
  });
});
