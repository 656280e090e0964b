/**
 * `kill -9` mid-stream and a restart, with three plain MQTT clients and no
 * SDK: mosquitto_sub -c, paho (Debian's python3-paho-mqtt) and mqtt.js, each
 * a persistent QoS 1 session of a device following its shop. Orders keep
 * coming through the API before, during and after the crash; every client
 * must see every event of its shop at least once, in order. On the embedded
 * database (a data directory) and on Postgres.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";
import { describe, expect, it } from "vitest";
import { readAll } from "../client/helpers.ts";
import { type BrewcastProcess, spawnBrewcast } from "../support/brewcast-process.ts";
import { useCleanups } from "../support/cleanups.ts";
import { fetchJson } from "../support/http.ts";
import { runMosquittoClient } from "../support/mosquitto.ts";
import { freePort } from "../support/ports.ts";
import { createTestDb, DATABASE_URL } from "../support/test-db.ts";
import { until } from "../support/wait.ts";
import { everyOnceInOrder, recordDeliveries } from "./helpers.ts";

const ADMIN = "restart-test-admin-token-0123456789";
const PAHO = fileURLToPath(new URL("./paho-subscriber.py", import.meta.url));
const onCleanup = useCleanups({ ignoreErrors: true });

/** A subscriber as the test sees it: the seqs it printed, in order. */
interface Subscriber {
  name: string;
  /** True once its subscription was granted. */
  subscribed(): boolean;
  seqs(): number[];
  stop(): void;
}

const seqOfLine = (line: string): number | undefined => {
  const match = /^\{"seq":(\d+)/.exec(line);
  return match ? Number(match[1]) : undefined;
};

const mqttJsSubscriber = (
  url: string,
  device: { id: string; secret: string },
  filter: string,
): Subscriber => {
  const client = mqtt.connect(url, {
    protocolVersion: 4,
    clientId: "mqttjs-kiosk",
    clean: false,
    username: device.id,
    password: device.secret,
    reconnectPeriod: 300,
    connectTimeout: 5_000,
  });
  client.on("error", () => undefined);
  const deliveries = recordDeliveries(client);
  let subscribed = false;
  client.on("connect", (connack) => {
    if (!connack.sessionPresent) {
      client.subscribe(filter, { qos: 1 }, (error) => {
        subscribed ||= !error;
      });
    }
  });
  return {
    name: "mqtt.js",
    subscribed: () => subscribed,
    seqs: () => deliveries.flatMap((d) => (d.seq === undefined ? [] : [d.seq])),
    stop: () => client.end(true),
  };
};

const mosquittoSubscriber = (
  port: number,
  device: { id: string; secret: string },
  filter: string,
): Subscriber => {
  const sub = runMosquittoClient(
    "mosquitto_sub",
    [
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-u",
      device.id,
      "-P",
      device.secret,
      "-c",
      "-i",
      "mosq-kiosk",
    ].concat(["-q", "1", "-t", filter, "-d"]),
    { lineBuffered: true },
  );
  return {
    name: "mosquitto_sub -c",
    subscribed: () => sub.stdout.some((line) => line.startsWith("Subscribed")),
    seqs: () => sub.stdout.flatMap((line) => seqOfLine(line) ?? []),
    stop: () => sub.child.kill("SIGKILL"),
  };
};

const pahoSubscriber = (port: number, device: { id: string; secret: string }, filter: string): Subscriber => {
  const child: ChildProcess = spawn(
    "/usr/bin/python3",
    [PAHO, "127.0.0.1", String(port), "paho-kiosk", device.id, device.secret, filter],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const seqs: number[] = [];
  let subscribed = false;
  let buffer = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) {
      const record = JSON.parse(line) as { payload?: string; subscribed?: number[] };
      if (record.subscribed?.[0] === 1) subscribed = true;
      const seq = record.payload === undefined ? undefined : seqOfLine(record.payload);
      if (seq !== undefined) seqs.push(seq);
    }
  });
  return { name: "paho", subscribed: () => subscribed, seqs: () => seqs, stop: () => child.kill("SIGKILL") };
};

/** Creates orders through the API one after another, retrying while brewcast is down. */
const startWriter = (apiUrl: () => string, secret: string, shops: string[]) => {
  let created = 0;
  let running = true;
  const done = (async () => {
    for (let i = 0; running; i++) {
      try {
        const response = await fetch(`${apiUrl()}/v1/orders`, {
          method: "POST",
          headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
          body: JSON.stringify({ shop_id: shops[i % shops.length], items: [{ sku: "latte", quantity: 1 }] }),
          signal: AbortSignal.timeout(5_000),
        });
        if (response.status === 201) created++;
        await response.arrayBuffer();
      } catch {
        // brewcast is down: the next attempt is the retry (fetch's own connect failure paces it).
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  })();
  return {
    created: () => created,
    async stop() {
      running = false;
      await done;
    },
  };
};

const databases = [
  { name: "embedded database", postgres: false },
  ...(DATABASE_URL ? [{ name: "Postgres", postgres: true }] : []),
];

describe.each(databases)("kill -9 mid-stream and a restart ($name)", ({ postgres }) => {
  it("every client sees every event of its shop at least once, in order", async () => {
    const env: Record<string, string> = {
      BREWCAST_HTTP_PORT: String(await freePort()),
      BREWCAST_MQTT_PORT: String(await freePort()),
      BREWCAST_ADMIN_TOKEN: ADMIN,
      BREWCAST_SESSION_FLUSH_MS: "200",
      BREWCAST_WATERMARK_MS: "500",
    };
    if (postgres) {
      const db = await createTestDb("pg");
      onCleanup(() => db.cleanup());
      env.DATABASE_URL = db.url!;
    } else {
      const dir = mkdtempSync(join(tmpdir(), "brewcast-restart-"));
      onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
      env.BREWCAST_DATA_DIR = dir;
    }
    let brewcast: BrewcastProcess = await spawnBrewcast(env);
    onCleanup(() => brewcast.stop("SIGKILL"));
    const admin = async (path: string, body: unknown) => {
      const response = await fetchJson<{ id: string; secret: string }>(`${brewcast.apiUrl}/admin/v1${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN}` },
        body,
      });
      expect(response.status).toBe(201);
      return response.body;
    };
    await admin("/partners", { id: "kiosks", name: "Kiosks" });
    await admin("/partners/kiosks/shops", { id: "s1", name: "One" });
    await admin("/partners/kiosks/shops", { id: "s2", name: "Two" });
    const device = await admin("/partners/kiosks/credentials", { kind: "device", shop_id: "s1" });
    const backend = await admin("/partners/kiosks/credentials", { kind: "backend" });
    const filter = "partners/kiosks/shops/s1/orders/+";

    const port = Number(env.BREWCAST_MQTT_PORT);
    const subscribers = [
      mqttJsSubscriber(brewcast.mqttUrl, device, filter),
      mosquittoSubscriber(port, device, filter),
      pahoSubscriber(port, device, filter),
    ];
    for (const subscriber of subscribers) onCleanup(async () => subscriber.stop());
    await until(() => subscribers.every((s) => s.subscribed()), 30_000, "every client subscribed");
    const writer = startWriter(() => brewcast.apiUrl, backend.secret, ["s1", "s2"]);
    onCleanup(() => writer.stop());
    await until(() => subscribers.every((s) => s.seqs().length >= 5), 30_000, "five events at every client");

    // Mid-stream: no warning, no flush.
    await brewcast.stop("SIGKILL");
    const createdBefore = writer.created();
    brewcast = await spawnBrewcast(env);
    await until(() => writer.created() >= createdBefore + 20, 60_000, "twenty orders after the restart");
    await writer.stop();

    const expected = (await readAll(brewcast.apiUrl, backend.secret, "s1")).map((event) => event.seq);
    const last = expected.at(-1)!;
    await until(
      () => subscribers.every((s) => s.seqs().includes(last)),
      30_000,
      `seq ${last} at every client`,
    ).catch((error: Error) => {
      throw new Error(
        `${error.message}: ${subscribers.map((s) => `${s.name} ${JSON.stringify(s.seqs().slice(-5))}`).join("; ")}`,
      );
    });
    for (const subscriber of subscribers) {
      expect(everyOnceInOrder(subscriber.seqs(), expected), subscriber.name).toEqual({ ok: true });
    }
  }, 180_000);
});
