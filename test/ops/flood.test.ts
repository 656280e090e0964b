/**
 * A pre-login flood against `brewcast start` in its own process: thousands
 * of sockets that never send CONNECT, from several loopback addresses, while
 * a device logs in and receives its events and the HTTP API answers. The
 * process must hold no more than its limits allow (counted in
 * /proc/<pid>/fd), and HTTP headers that never finish must be cut off.
 * The figures (held connections, descriptors, HTTP latency) are printed for
 * docs/operations.md; the assertions are about what was held and answered.
 */
import { readdirSync } from "node:fs";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BrewcastProcess, spawnBrewcast } from "../support/brewcast-process.ts";
import { fetchJson } from "../support/http.ts";
import { collect, login, subscribeGranted } from "../support/mqtt.ts";
import { createTestDb, DATABASE_URL, type TestDb } from "../support/test-db.ts";
import { until } from "../support/wait.ts";

const ADMIN = "flood-test-admin-token-0123456789";
const METRICS_TOKEN = "flood-test-metrics-token-0123456789";
const PENDING_PER_ADDRESS = 200;
const FLOOD_ADDRESSES = ["127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"];
const SOCKETS_PER_ADDRESS = 1_000;

const openDescriptors = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/** Opens a socket from `localAddress` and counts it when the server closes it; null if it never connected. */
const openIdle = (port: number, localAddress: string, onClose: () => void): Promise<net.Socket | null> =>
  new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress });
    socket.once("connect", () => {
      socket.on("error", () => undefined);
      socket.once("close", onClose);
      resolve(socket);
    });
    socket.once("error", () => resolve(null));
  });

describe("a flood of connections that never log in", () => {
  let testDb: TestDb | undefined;
  let brewcast: BrewcastProcess;
  const admin = { authorization: `Bearer ${ADMIN}` };

  beforeAll(async () => {
    const env: Record<string, string> = {
      BREWCAST_HTTP_PORT: "0",
      BREWCAST_MQTT_PORT: "0",
      BREWCAST_ADMIN_TOKEN: ADMIN,
      BREWCAST_METRICS_TOKEN: METRICS_TOKEN,
      BREWCAST_MAX_CONNECTIONS: "3000",
      BREWCAST_MAX_PENDING_PER_ADDRESS: String(PENDING_PER_ADDRESS),
      // Longer than the flood, so what the limits let in is still held when counted.
      BREWCAST_CONNECT_TIMEOUT_MS: "30000",
      BREWCAST_HTTP_HEADERS_TIMEOUT_MS: "1000",
      BREWCAST_HTTP_REQUEST_TIMEOUT_MS: "5000",
      BREWCAST_WATERMARK_MS: "500",
    };
    if (DATABASE_URL) {
      testDb = await createTestDb("pg");
      env.DATABASE_URL = testDb.url!;
    } else env.BREWCAST_DATA_DIR = "memory://";
    brewcast = await spawnBrewcast(env);
  }, 120_000);

  afterAll(async () => {
    await brewcast?.stop("SIGKILL");
    await testDb?.cleanup();
  });

  it("holds what its limits allow while a device logs in, gets its events, and HTTP answers", async () => {
    const pid = brewcast.child.pid!;
    const post = async (path: string, body: unknown, headers = admin) => {
      const response = await fetchJson<Record<string, string>>(`${brewcast.apiUrl}${path}`, {
        method: "POST",
        headers,
        body,
      });
      expect(response.status).toBe(201);
      return response.body;
    };
    await post("/admin/v1/partners", { id: "flood", name: "Flood" });
    await post("/admin/v1/partners/flood/shops", { id: "s1", name: "One" });
    const device = await post("/admin/v1/partners/flood/credentials", { kind: "device", shop_id: "s1" });
    const idleDescriptors = openDescriptors(pid);

    // HTTP answers all through the flood; its latency is recorded.
    const latencies: number[] = [];
    const failures: string[] = [];
    let flooding = true;
    const prober = (async () => {
      while (flooding) {
        const started = performance.now();
        const response = await fetch(`${brewcast.apiUrl}/healthz`).catch((error: Error) => error);
        latencies.push(performance.now() - started);
        if (response instanceof Error || response.status !== 200) failures.push(String(response));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();

    const held: net.Socket[] = [];
    const closedByServer = { count: 0 };
    await Promise.all(
      FLOOD_ADDRESSES.map(async (address) => {
        for (let batch = 0; batch < SOCKETS_PER_ADDRESS; batch += 100) {
          const sockets = await Promise.all(
            Array.from({ length: 100 }, () =>
              openIdle(brewcast.ports.mqtt, address, () => closedByServer.count++),
            ),
          );
          for (const socket of sockets) if (socket) held.push(socket);
        }
      }),
    );
    const attempted = FLOOD_ADDRESSES.length * SOCKETS_PER_ADDRESS;
    const allowed = FLOOD_ADDRESSES.length * PENDING_PER_ADDRESS;
    // Every socket over the per-address limit is closed by the server, none of the others.
    await until(() => closedByServer.count >= attempted - allowed, 20_000, "the extra sockets closed");
    const floodDescriptors = openDescriptors(pid);

    // A device from another address logs in and gets its shop's events meanwhile.
    const client = await login(brewcast.mqttUrl, device as unknown as { id: string; secret: string });
    const got = collect(client);
    expect(await subscribeGranted(client, "partners/flood/shops/s1/orders/+", 1)).toBe(1);
    for (let i = 0; i < 5; i++) {
      await post(
        "/v1/orders",
        { shop_id: "s1", items: [{ sku: "latte", quantity: 1 }] },
        { authorization: `Bearer ${device.secret}` },
      );
    }
    await until(() => got.messages.length >= 5, 15_000, "the device's five events");
    client.end(true);

    flooding = false;
    await prober;
    const metrics = await fetch(`${brewcast.apiUrl}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    }).then((r) => r.text());
    for (const socket of held) socket.destroy();

    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        flood: { attempted, heldByServer: attempted - closedByServer.count, allowed },
        descriptors: { idle: idleDescriptors, duringFlood: floodDescriptors },
        httpHealthzMs: {
          requests: sorted.length,
          p50: Number(percentile(sorted, 50).toFixed(1)),
          p99: Number(percentile(sorted, 99).toFixed(1)),
          max: Number(sorted.at(-1)!.toFixed(1)),
        },
      }),
    );
    expect(failures).toEqual([]);
    expect(floodDescriptors - idleDescriptors).toBeLessThanOrEqual(allowed + 50);
    expect(metrics).toMatch(/brewcast_mqtt_connections_refused_total\{reason="address_pending"\} [1-9]/);
  });

  it("closes HTTP connections whose headers never finish after BREWCAST_HTTP_HEADERS_TIMEOUT_MS", async () => {
    const sockets = await Promise.all(
      Array.from(
        { length: 100 },
        () =>
          new Promise<net.Socket>((resolve) => {
            const socket = net.connect(brewcast.ports.http, "127.0.0.1", () => resolve(socket));
            socket.on("error", () => undefined);
          }),
      ),
    );
    const closed = sockets.map(
      (socket) => new Promise<void>((resolve) => socket.once("close", () => resolve())),
    );
    for (const socket of sockets) {
      socket.resume(); // read the 408, or 'close' never comes
      socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    }
    // Headers timeout 1 s, checked every second: all gone well within 10 s (node's default was 60 s).
    await Promise.race([
      Promise.all(closed),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error("slow headers still held after 10 s")), 10_000),
      ),
    ]);
  });

  it("GET /metrics asks for its bearer token when BREWCAST_METRICS_TOKEN is set", async () => {
    expect((await fetch(`${brewcast.apiUrl}/metrics`)).status).toBe(401);
    const wrong = await fetch(`${brewcast.apiUrl}/metrics`, { headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${brewcast.apiUrl}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(right.status).toBe(200);
    expect(await right.text()).toContain("brewcast_mqtt_pending_logins");
  });
});
