/**
 * /metrics on a running brewcast: the values move as events flow.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningBrewcast } from "../../src/main.ts";
import { connect } from "../support/mqtt.ts";
import { type System, startSystem } from "../support/system.ts";
import { until } from "../support/wait.ts";

const ADMIN = "metrics-test-admin-token";

/** The value of one series in Prometheus text, or undefined. */
const sample = (text: string, series: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe("metrics", () => {
  let system: System;
  let running: RunningBrewcast;
  let api: string;
  beforeAll(async () => {
    system = await startSystem({ adminToken: ADMIN });
    running = system.running;
    api = system.apiUrl;
  }, 120_000);
  afterAll(async () => system?.close());

  const post = async (path: string, token: string, body: unknown) => {
    const response = await fetch(`${api}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, string> };
  };
  const scrape = async () => (await fetch(`${api}/metrics`)).text();
  /** A new partner with shop `s1` and a backend credential, made through the admin API. */
  const newPartner = async (prefix: string) => {
    const partner = `${prefix}-${Date.now().toString(36)}`;
    await post("/admin/v1/partners", ADMIN, { id: partner, name: prefix });
    await post(`/admin/v1/partners/${partner}/shops`, ADMIN, { id: "s1", name: "One" });
    const backend = (await post(`/admin/v1/partners/${partner}/credentials`, ADMIN, { kind: "backend" }))
      .body;
    return { partner, backend };
  };

  it("counts orders, deliveries, lag, clients and auth failures", async () => {
    const { partner, backend } = await newPartner("m");

    const client = await connect(`mqtt://127.0.0.1:${running.ports.mqtt}`, {
      username: backend.id!,
      password: backend.secret!,
    });
    try {
      await client.subscribeAsync(`partners/${partner}/#`, { qos: 1 });
      const before = await scrape();
      expect(sample(before, `brewcast_mqtt_connected_clients{partner="${partner}",kind="backend"}`)).toBe(1);
      expect(sample(before, "brewcast_bridge_leader")).toBe(1);
      expect(sample(before, `brewcast_partner_head_seq{partner="${partner}"}`)).toBe(0);

      for (let i = 0; i < 5; i++) {
        const created = await post("/v1/orders", backend.secret!, {
          shop_id: "s1",
          items: [{ sku: "latte", quantity: 1 }],
        });
        expect(created.status).toBe(201);
      }
      const refused = await fetch(`${api}/v1/events`, { headers: { authorization: "Bearer not-a-secret" } });
      expect(refused.status).toBe(401);

      let text = "";
      await until(
        () => {
          void scrape().then((t) => {
            text = t;
          });
          return sample(text, `brewcast_partner_published_seq{partner="${partner}"}`) === 5;
        },
        15_000,
        "the published seq to reach 5",
      );
      expect(sample(text, `brewcast_partner_head_seq{partner="${partner}"}`)).toBe(5);
      expect(sample(text, `brewcast_partner_lag_events{partner="${partner}"}`)).toBe(0);
      expect(sample(text, `brewcast_deliveries_total{partner="${partner}"}`)).toBe(5);
      expect(sample(text, `brewcast_partner_state{partner="${partner}",state="normal"}`)).toBe(1);
      expect(
        sample(
          text,
          `brewcast_http_requests_total{route="/v1/orders",method="POST",status="201",partner="${partner}"}`,
        ),
      ).toBe(5);
      expect(sample(text, `brewcast_auth_failures_total{transport="http"}`)).toBeGreaterThanOrEqual(1);
    } finally {
      await client.endAsync();
    }
  });

  it("says where GET /v1/events' events came from, and what is kept in memory", async () => {
    const { backend } = await newPartner("mh");
    for (let i = 0; i < 3; i++)
      await post("/v1/orders", backend.secret!, { shop_id: "s1", items: [{ sku: "latte", quantity: 1 }] });
    const served = (text: string, source: string) =>
      sample(text, `brewcast_history_events_served_total{source="${source}"}`) ?? 0;
    const before = await scrape();
    const read = () =>
      fetch(`${api}/v1/events?after=0`, { headers: { authorization: `Bearer ${backend.secret}` } });
    expect((await read()).status).toBe(200);
    expect((await read()).status).toBe(200);
    const after = await scrape();
    // The bridge here may have kept them as it published them; either way the second read took
    // them from memory, and all six came from one or the other.
    const fromMemory = served(after, "memory") - served(before, "memory");
    const fromDatabase = served(after, "database") - served(before, "database");
    expect(fromMemory).toBeGreaterThanOrEqual(3);
    expect(fromMemory + fromDatabase).toBe(6);
    expect(sample(after, "brewcast_history_cache_events")).toBeGreaterThanOrEqual(3);
    expect(sample(after, "brewcast_history_cache_bytes")).toBeGreaterThan(3 * 300);
  });
});
