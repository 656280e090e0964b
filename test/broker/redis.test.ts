import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildOrderEventTopic, buildShopCursorTopic } from "../../src/domain/topics.ts";
import { createOrders } from "../bridge/helpers.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import { seedPartner } from "../support/fixtures.ts";
import { closed, collect, login, subscribeGranted } from "../support/mqtt.ts";
import { createTestDb, DATABASE_URL, REDIS_URL, type TestDb } from "../support/test-db.ts";
import { until } from "../support/wait.ts";

interface Node {
  child: ChildProcess;
  url: string;
}

/** Starts one broker process and waits for its {"mqtt": port} line. */
const startNode = (dbUrl: string, prefix: string): Promise<Node> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "test/broker/broker-node.ts"], {
      env: { ...process.env, NODE_DATABASE_URL: dbUrl, NODE_REDIS_PREFIX: prefix },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line) resolve({ child, url: `mqtt://127.0.0.1:${JSON.parse(line).mqtt}` });
    });
    child.once("exit", (code) => reject(new Error(`broker node exited with ${code}`)));
  });

const stopNode = (node: Node | undefined): Promise<void> =>
  new Promise((resolve) => {
    if (!node || node.child.exitCode !== null) return resolve();
    node.child.once("exit", () => resolve());
    node.child.kill("SIGTERM");
  });

// Two processes need a database both can reach: Postgres, not in-memory PGlite.
describe.skipIf(!REDIS_URL || !DATABASE_URL)("Redis scale-out: two broker processes act as one", () => {
  const prefix = `brewcast-test-${randomBytes(4).toString("hex")}:`;
  let testDb: TestDb;
  let p: SeededPartner;
  let a: Node;
  let b: Node;

  beforeAll(async () => {
    testDb = await createTestDb("pg");
    p = await seedPartner(testDb.db, { shops: 1 });
    [a, b] = await Promise.all([startNode(testDb.url!, prefix), startNode(testDb.url!, prefix)]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([stopNode(a), stopNode(b)]);
    const redis = new Redis(REDIS_URL!);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
    await testDb?.cleanup();
  });

  it("subscribe on one node, publish on the other (the device status topic, the only client publish)", async () => {
    const sub = await login(a.url, p.backend);
    const got = collect(sub);
    await subscribeGranted(sub, `partners/${p.id}/devices/+/status`, 1);
    const pub = await login(b.url, p.devices[0]!);
    // Redis subscriptions propagate asynchronously: publish until the first one arrives, then count.
    const topic = `partners/${p.id}/devices/${p.devices[0]!.id}/status`;
    await until(
      () => {
        if (got.messages.length === 0) pub.publish(topic, "probe", { qos: 1 });
        return got.messages.length > 0;
      },
      10_000,
      "cross-node delivery",
    );
    for (let i = 0; i < 100; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 });
    // Late probes may still arrive; every m{i} exactly once and in order.
    const ms = () => got.messages.map((m) => m.payload).filter((m) => m !== "probe");
    await until(() => ms().length >= 100, 10_000, "100 messages across nodes");
    expect(ms()).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
    sub.end(true);
    pub.end(true);
  });

  it("a retained status set on one node is seen by a new subscriber on the other", async () => {
    const device = p.devices[0]!;
    const topic = `partners/${p.id}/devices/${device.id}/status`;
    const pub = await login(a.url, device);
    await pub.publishAsync(topic, "retained-online", { qos: 1, retain: true });
    pub.end(true);
    const sub = await login(b.url, p.backend);
    const got = collect(sub);
    await subscribeGranted(sub, topic, 1);
    await got.waitFor(1);
    expect(got.messages[0]).toMatchObject({ payload: "retained-online", retain: true });
    sub.end(true);
  });

  it("a persistent session made on one node resumes on the other: the log it missed, then live", async () => {
    const clientId = `resume-${randomBytes(4).toString("hex")}`;
    const filter = `partners/${p.id}/shops/shop-1/orders/+`;
    const first = await login(a.url, p.backend, { clientId, clean: false });
    await subscribeGranted(first, filter, 1);
    await subscribeGranted(first, `partners/${p.id}/devices/+/status`, 1);
    first.end(true);
    await closed(first);
    // While the session is offline: three events are committed, and a device's status changes.
    await createOrders(testDb.db, p.id, ["shop-1"], 3);
    const device = p.devices[0]!;
    const pub = await login(a.url, device);
    await pub.publishAsync(`partners/${p.id}/devices/${device.id}/status`, "online-while-away", {
      qos: 1,
      retain: true,
    });
    pub.end(true);
    let got!: ReturnType<typeof collect>;
    let sessionPresent: boolean | undefined;
    const again = await login(b.url, p.backend, { clientId, clean: false }, (c) => {
      got = collect(c);
      c.once("connect", (connack) => {
        sessionPresent = connack.sessionPresent;
      });
    });
    expect(sessionPresent).toBe(true);
    await until(() => got.messages.length >= 4, 10_000, "the missed events and the device's status");
    const events = got.messages.filter((m) => m.topic.includes("/orders/"));
    expect(events.map((m) => JSON.parse(m.payload).seq)).toEqual([1, 2, 3]);
    // Sent because the session's subscription matches: RETAIN=0 [MQTT-3.3.1-9].
    expect(got.messages.find((m) => m.topic.endsWith("/status"))).toMatchObject({
      payload: "online-while-away",
      retain: false,
    });
    expect(got.messages.every((m) => !m.retain)).toBe(true);
    again.end(true);
  });

  it("ACLs hold across nodes: another partner's topics stay refused", async () => {
    const sub = await login(b.url, p.devices[0]!);
    expect(await subscribeGranted(sub, `partners/${p.id}/#`, 1)).toBe(128);
    expect(await subscribeGranted(sub, buildShopCursorTopic(p.id, "shop-1"), 1)).toBe(1);
    expect(await subscribeGranted(sub, buildOrderEventTopic(p.id, "shop-1", "created"), 1)).toBe(1);
    sub.end(true);
  });
});
