/**
 * ops/grafana/brewcast.json: every panel's query names only metrics that
 * brewcast exports, read from the registry src/ops/metrics.ts builds with
 * every source present (what a `brewcast start` process serves on /metrics),
 * and the dashboard covers the series operators watch.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { type BrokerCounters, createMetrics } from "../../src/ops/metrics.ts";

const DASHBOARD = fileURLToPath(new URL("../../ops/grafana/brewcast.json", import.meta.url));

interface Panel {
  title: string;
  targets?: { expr: string }[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: { query?: string | { query: string } }[] };
}

const idleBroker: BrokerCounters = {
  authFailures: 0,
  throttledConnects: 0,
  connectionsRefused: { listener_full: 0, address_pending: 0 },
  restoredSubscriptionsDropped: 0,
  oversizeClosed: 0,
  malformedClosed: 0,
  pendingLogins: 0,
  sessions: {
    expired: 0,
    ended: { past_retention: 0, log_reset: 0 },
    replayed: 0,
    heldDropped: 0,
    connected: 0,
  },
};

/** Every series name the registry exports, with a histogram's and summary's suffixed series. */
const exportedNames = async (): Promise<Set<string>> => {
  const metrics = createMetrics({
    readStatus: async () => [],
    connectedClients: () => ({}),
    brokerCounters: () => idleBroker,
    bridgeLeader: () => true,
    readWebhookStatus: async () => [],
  });
  const names = new Set<string>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (["histogram", "summary"].includes(String(metric.type)))
      for (const suffix of ["_bucket", "_sum", "_count"]) names.add(`${metric.name}${suffix}`);
  }
  return names;
};

const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
const queries = [
  ...dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ where: panel.title, expr: target.expr })),
  ),
  ...dashboard.templating.list
    .filter((variable) => variable.query !== undefined && typeof variable.query !== "string")
    .map((variable) => ({ where: "templating", expr: (variable.query as { query: string }).query })),
];

describe("ops/grafana/brewcast.json", () => {
  it("names, in every query, only metrics brewcast exports", async () => {
    const exported = await exportedNames();
    const unknown: string[] = [];
    for (const { where, expr } of queries) {
      const named = expr.match(/\bbrewcast_[a-z0-9_]+/g) ?? [];
      expect(named.length, `${where}: ${expr} names no brewcast metric`).toBeGreaterThan(0);
      for (const name of named) if (!exported.has(name)) unknown.push(`${where}: ${name}`);
    }
    expect(unknown).toEqual([]);
  });

  it("the check can fail: a misspelt metric is not exported", async () => {
    const exported = await exportedNames();
    expect(exported.has("brewcast_partner_lag_events")).toBe(true);
    expect(exported.has("brewcast_partner_lag_event")).toBe(false);
  });

  it("shows lag, ladder states, clients, publish errors, the bridge leader and webhooks", () => {
    const all = queries.map((query) => query.expr).join("\n");
    for (const metric of [
      "brewcast_partner_lag_events",
      "brewcast_partner_lag_seconds",
      "brewcast_partner_state",
      "brewcast_mqtt_connected_clients",
      "brewcast_bridge_publish_errors_total",
      "brewcast_bridge_leader",
      "brewcast_webhook_deliveries_total",
    ])
      expect(all).toContain(metric);
    // Panel ids are unique (Grafana keys panels by id).
    const ids = dashboard.panels.map((panel) => (panel as unknown as { id: number }).id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
