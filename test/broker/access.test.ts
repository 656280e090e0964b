import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker } from "../../src/broker/index.ts";
import {
  buildDeviceStatusTopic,
  buildOrderEventTopic,
  buildPartnerCursorTopic,
  buildShopCursorTopic,
} from "../../src/domain/topics.ts";
import { createSessionLog, createSessionStore } from "../../src/store/mqtt-sessions.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import { runMosquittoClient } from "../support/mosquitto.ts";
import { closed, collect, connackCode, login, subscribeGranted } from "../support/mqtt.ts";
import { silentLog } from "../support/test-db.ts";
import { until } from "../support/wait.ts";
import { type Harness, startHarness } from "./helpers.ts";

let h: Harness;
let acme: SeededPartner;
let other: SeededPartner;

beforeAll(async () => {
  h = await startHarness();
  acme = await h.seed(2);
  other = await h.seed(2);
});
afterAll(async () => {
  await h?.close();
});

/** Publishes one event on every contract topic of both partners, in-process as the bridge. */
const publishEverywhere = async (tag: string) => {
  for (const p of [acme, other]) {
    await h.broker.publish({ topic: buildPartnerCursorTopic(p.id), payload: tag, qos: 1, retain: false });
    for (const s of p.shops) {
      await h.broker.publish({
        topic: buildOrderEventTopic(p.id, s, "created"),
        payload: tag,
        qos: 1,
        retain: false,
      });
      await h.broker.publish({ topic: buildShopCursorTopic(p.id, s), payload: tag, qos: 1, retain: false });
    }
  }
};

describe("logins and CONNACK codes", () => {
  it("accepts a valid secret, refuses a bad one with 4, an unknown user with 4, no password with 4", async () => {
    const client = await login(h.url, acme.backend);
    client.end(true);
    expect(await connackCode(h.url, { username: acme.backend.id, password: "bcs_wrong" })).toBe(4);
    expect(await connackCode(h.url, { username: "cr-aaaaaaaaaaaaaaaaaaaa", password: "x" })).toBe(4);
    expect(await connackCode(h.url, { username: acme.backend.id })).toBe(4);
    expect(await connackCode(h.url, {})).toBe(4);
    expect(h.broker.stats().authFailures).toBeGreaterThanOrEqual(4);
  });

  it("refuses an MQTT 5 CONNECT with return code 1", async () => {
    const socket = net.connect(h.broker.ports.mqtt, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    // CONNECT, protocol name MQTT, level 5, clean, keepalive 60, properties length 0, client id "x".
    const body = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 0x02, 0, 60, 0, 0, 1, 0x78]);
    socket.write(Buffer.concat([Buffer.from([0x10, body.length]), body]));
    const [reply] = (await new Promise((resolve) => socket.once("data", (d) => resolve([d])))) as [Buffer];
    // CONNACK: 0x20, remaining length, session present, return code.
    expect(reply[0]).toBe(0x20);
    expect(reply[3]).toBe(1);
    socket.destroy();
  });

  it("refuses a will on anything but the client's own status topic with 5, accepts its own", async () => {
    const device = acme.devices[0]!;
    expect(
      await connackCode(h.url, {
        username: device.id,
        password: device.secret,
        will: {
          topic: buildOrderEventTopic(acme.id, "shop-1", "created"),
          payload: Buffer.from("x"),
          qos: 0,
          retain: false,
        },
      }),
    ).toBe(5);
    const ok = await login(h.url, device, {
      will: {
        topic: buildDeviceStatusTopic(acme.id, device.id),
        payload: Buffer.from("offline"),
        qos: 1,
        retain: true,
      },
    });
    ok.end(true);
  });

  it("refuses a revoked credential and a suspended partner with 5; resumed partners log in again", async () => {
    const p = await h.seed(1);
    await h.credentials.revoke(p.devices[0]!.id);
    expect(await connackCode(h.url, { username: p.devices[0]!.id, password: p.devices[0]!.secret })).toBe(5);
    await h.partners.setState(p.id, "suspended");
    expect(await connackCode(h.url, { username: p.backend.id, password: p.backend.secret })).toBe(5);
    await h.partners.setState(p.id, "normal");
    const resumed = Date.now();
    while ((await connackCode(h.url, { username: p.backend.id, password: p.backend.secret })) !== 0) {
      expect(Date.now() - resumed).toBeLessThan(3_000);
    }
  });
});

describe("live control", () => {
  it("revoking a credential closes its live connections within 1 s, and only those", async () => {
    const p = await h.seed(1);
    const victim = await login(h.url, p.devices[0]!);
    const bystander = await login(h.url, p.backend);
    const started = Date.now();
    await h.credentials.revoke(p.devices[0]!.id);
    await closed(victim);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(bystander.connected).toBe(true);
    bystander.end(true);
  });

  it("suspending a partner closes all its connections within 1 s and refuses new ones until resumed", async () => {
    const p = await h.seed(2);
    const clients = await Promise.all([login(h.url, p.backend), ...p.devices.map((d) => login(h.url, d))]);
    const outsider = await login(h.url, other.backend);
    const started = Date.now();
    await h.partners.setState(p.id, "suspended");
    await Promise.all(clients.map(closed));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(outsider.connected).toBe(true);
    expect(await connackCode(h.url, { username: p.backend.id, password: p.backend.secret })).toBe(5);
    await h.partners.setState(p.id, "normal");
    // Resuming reaches the login cache through NOTIFY: logins work again within its TTL (2 s).
    const resumedWithin = Date.now();
    while ((await connackCode(h.url, { username: p.backend.id, password: p.backend.secret })) !== 0) {
      expect(Date.now() - resumedWithin).toBeLessThan(3_000);
    }
    outsider.end(true);
  });
});

describe("publish restrictions", () => {
  it("a client may publish its own retained status; any other publish closes it and reaches no one", async () => {
    const device = acme.devices[0]!;
    const watcher = await login(h.url, acme.backend);
    const got = collect(watcher);
    await subscribeGranted(watcher, `partners/${acme.id}/#`, 1);
    const publisher = await login(h.url, device);
    await publisher.publishAsync(buildDeviceStatusTopic(acme.id, device.id), "online", {
      qos: 1,
      retain: true,
    });
    await got.waitFor(1);
    const live = () => got.messages.filter((m) => !m.retain);
    await until(() => live().length >= 1, 5_000, "status");
    expect(live()[0]).toMatchObject({
      topic: buildDeviceStatusTopic(acme.id, device.id),
      payload: "online",
    });

    for (const topic of [
      buildOrderEventTopic(acme.id, "shop-1", "created"),
      buildPartnerCursorTopic(acme.id),
      buildDeviceStatusTopic(acme.id, acme.devices[1]!.id),
      buildDeviceStatusTopic(other.id, device.id),
      "$SYS/x",
      "anything",
    ]) {
      const bad = await login(h.url, device);
      const gone = closed(bad);
      bad.publish(topic, "forged", { qos: 1 });
      await gone;
    }
    // The publish that follows the forgeries is delivered; nothing forged came before it.
    await h.broker.publish({
      topic: buildPartnerCursorTopic(acme.id),
      payload: "marker",
      qos: 1,
      retain: false,
    });
    await until(() => live().length >= 2, 5_000, "marker");
    expect(live().map((m) => m.payload)).toEqual(["online", "marker"]);
    expect(h.broker.stats().publishDenied).toBeGreaterThanOrEqual(6);
    watcher.end(true);
    publisher.end(true);
  });
});

describe("subscribe ACL matrix (mqtt.js)", () => {
  const filters = (p: SeededPartner, o: SeededPartner) => ({
    partnerAll: { filter: `partners/${p.id}/#`, backend: true, device: false },
    ownShopAll: { filter: `partners/${p.id}/shops/shop-1/#`, backend: true, device: true },
    ownShopOrders: { filter: `partners/${p.id}/shops/shop-1/orders/+`, backend: true, device: true },
    ownShopCursor: { filter: `partners/${p.id}/shops/shop-1/cursor`, backend: true, device: true },
    otherShop: { filter: `partners/${p.id}/shops/shop-2/#`, backend: true, device: false },
    anyShop: { filter: `partners/${p.id}/shops/+/orders/created`, backend: true, device: false },
    partnerCursor: { filter: `partners/${p.id}/cursor`, backend: true, device: false },
    hash: { filter: "#", backend: false, device: false },
    plusRoot: { filter: "+/+/#", backend: false, device: false },
    anyPartner: { filter: "partners/+/cursor", backend: false, device: false },
    partnersHash: { filter: "partners/#", backend: false, device: false },
    sys: { filter: "$SYS/#", backend: false, device: false },
    otherPartner: { filter: `partners/${o.id}/#`, backend: false, device: false },
    otherPartnerShop: { filter: `partners/${o.id}/shops/shop-1/#`, backend: false, device: false },
  });

  for (const kind of ["backend", "device"] as const) {
    it(`${kind}: allowed filters get messages only from their scope, denied get 0x80 and stay connected`, async () => {
      const cred = kind === "backend" ? acme.backend : acme.devices[0]!;
      const matrix = filters(acme, other);
      const clients = [];
      const expectedScope = kind === "backend" ? `partners/${acme.id}/` : `partners/${acme.id}/shops/shop-1/`;
      for (const [name, row] of Object.entries(matrix)) {
        const client = await login(h.url, cred);
        const got = collect(client);
        const granted = await subscribeGranted(client, row.filter, 1);
        expect(granted, `${kind} ${name} ${row.filter}`).toBe(row[kind] ? 1 : 128);
        expect(client.connected, `${name} stays connected`).toBe(true);
        clients.push({ name, row, client, got });
      }
      await publishEverywhere(`m-${kind}`);
      // Then "end" everywhere: every allowed filter matches one of these, and delivery per client is in order.
      await publishEverywhere("end");
      for (const { name, row, client, got } of clients) {
        if (row[kind]) await until(() => got.messages.some((m) => m.payload === "end"), 5_000, name);
        for (const m of got.messages) {
          expect(m.topic.startsWith(expectedScope), `${name} got ${m.topic}`).toBe(true);
          expect(m.topic.includes(other.id), `${name} got another partner's ${m.topic}`).toBe(false);
        }
        if (!row[kind]) expect(got.messages, name).toEqual([]);
        client.end(true);
      }
    });
  }
});

describe("subscribe ACL matrix (mosquitto_sub)", () => {
  it("allowed filters print messages, denied ones are refused, no cross-partner message", async () => {
    const port = String(h.broker.ports.mqtt);
    const device = acme.devices[0]!;
    const base = ["-h", "127.0.0.1", "-p", port, "-q", "1", "-v"];
    const allowed = [
      // (Not `partners/{p}/#`: the retained device status of an earlier test would arrive first.)
      { cred: acme.backend, filter: `partners/${acme.id}/shops/+/orders/#` },
      { cred: device, filter: `partners/${acme.id}/shops/shop-1/#` },
    ];
    const denied = [
      { cred: device, filter: `partners/${acme.id}/#` },
      { cred: device, filter: `partners/${acme.id}/shops/shop-2/#` },
      { cred: acme.backend, filter: "#" },
      { cred: acme.backend, filter: "partners/+/cursor" },
      { cred: acme.backend, filter: `partners/${other.id}/#` },
      { cred: acme.backend, filter: "$SYS/#" },
    ];
    const subscribeOnce = ({ cred, filter }: (typeof allowed)[number]) =>
      runMosquittoClient("mosquitto_sub", [
        ...base,
        "-u",
        cred.id,
        "-P",
        cred.secret,
        "-t",
        filter,
        "-C",
        "1",
      ]);
    const subs = allowed.map(subscribeOnce);
    const refusals = denied.map(subscribeOnce);
    // Denied subscriptions: mosquitto_sub 2.0 says so and exits, without a message.
    for (const r of refusals) {
      await r.exit;
      expect(r.stderr()).toMatch(/All subscription requests were denied/);
      expect(r.stdout).toEqual([]);
    }
    // The allowed ones: keep publishing to the other partner first, then to acme's shop-1, until both printed.
    const done = Promise.all(subs.map((s) => s.exit));
    let finished = false;
    void done.then(() => {
      finished = true;
    });
    while (!finished) {
      await h.broker.publish({
        topic: buildOrderEventTopic(other.id, "shop-1", "created"),
        payload: "x",
        qos: 1,
        retain: false,
      });
      await h.broker.publish({
        topic: buildOrderEventTopic(acme.id, "shop-1", "created"),
        payload: "mine",
        qos: 1,
        retain: false,
      });
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 50))]);
    }
    for (const s of subs) {
      expect(await s.exit).toBe(0);
      expect(s.stdout).toEqual([`${buildOrderEventTopic(acme.id, "shop-1", "created")} mine`]);
    }
  });

  it("mosquitto_pub to a forbidden topic is disconnected; its own status works", async () => {
    const port = String(h.broker.ports.mqtt);
    const device = acme.devices[1]!;
    const args = ["-h", "127.0.0.1", "-p", port, "-u", device.id, "-P", device.secret, "-q", "1", "-m", "x"];
    const good = runMosquittoClient("mosquitto_pub", [
      ...args,
      "-t",
      buildDeviceStatusTopic(acme.id, device.id),
      "-r",
    ]);
    expect(await good.exit).toBe(0);
    const bad = runMosquittoClient("mosquitto_pub", [
      ...args,
      "-t",
      buildOrderEventTopic(acme.id, "shop-2", "created"),
    ]);
    expect(await bad.exit).not.toBe(0);
  });
});

describe("connections per partner and login throttling", () => {
  it("refuses the connection over the partner's limit with 3, other partners unaffected", async () => {
    const limited = await h.extraBroker({ maxConnectionsPerPartner: 2 });
    {
      const p = await h.seed(1);
      const q = await h.seed(1);
      const a = await login(limited.url, p.backend);
      const b = await login(limited.url, p.devices[0]!);
      expect(await connackCode(limited.url, { username: p.backend.id, password: p.backend.secret })).toBe(3);
      const c = await login(limited.url, q.backend);
      expect(limited.broker.stats().connected[p.id]).toEqual({ backend: 1, device: 1 });
      a.end(true);
      await closed(a);
      await until(() => (limited.broker.stats().connected[p.id]?.backend ?? 0) === 0, 5_000, "release");
      const d = await login(limited.url, p.backend);
      for (const x of [b, c, d]) x.end(true);
    }
  });

  it("throttles an address after repeated failed logins", async () => {
    const throttled = await h.extraBroker({ loginFailureLimit: 3 });
    {
      const p = await h.seed(1);
      for (let i = 0; i < 3; i++) {
        expect(await connackCode(throttled.url, { username: p.backend.id, password: "wrong" })).toBe(4);
      }
      // Even the right password is now refused: the socket closes with no CONNACK.
      const result = await connackCode(throttled.url, { username: p.backend.id, password: p.backend.secret });
      expect(result).not.toBe(0);
      expect(throttled.broker.stats().throttledConnects).toBe(1);
    }
  });
});

describe("startBroker", () => {
  it("fails with a one-line error naming the variable when the port is taken", async () => {
    const taken = h.broker.ports.mqtt;
    await expect(
      startBroker({
        host: "127.0.0.1",
        mqttPort: taken,
        maxPacketBytes: 1024,
        maxConnectionsPerPartner: 1,
        drainTimeoutMs: 1000,
        sessions: { store: createSessionStore(h.testDb.db), log: createSessionLog(h.testDb.db) },
        sessionTtlSeconds: 60,
        log: silentLog,
        verifier: h.credentials,
        accessChanges: { subscribe: () => () => undefined },
      }),
    ).rejects.toThrow(`BREWCAST_MQTT_PORT=${taken}: 127.0.0.1:${taken} is already in use`);
  });
});
