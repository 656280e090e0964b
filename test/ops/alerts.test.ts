/**
 * ops/prometheus/alerts.yml: valid for Prometheus (`promtool check rules`),
 * its unit tests pass (`promtool test rules`), and it uses only the metric
 * names brewcast exports. promtool comes with Debian's `prometheus` package.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const RULES = fileURLToPath(new URL("../../ops/prometheus/alerts.yml", import.meta.url));
const RULE_TESTS = fileURLToPath(new URL("../../ops/prometheus/alerts.test.yml", import.meta.url));

/** The series src/ops/metrics.ts exports that alerts may use (the metrics contract of issue 6). */
const EXPORTED = new Set([
  "brewcast_partner_head_seq",
  "brewcast_partner_published_seq",
  "brewcast_partner_lag_events",
  "brewcast_partner_lag_seconds",
  "brewcast_partner_state",
  "brewcast_bridge_leader",
  "brewcast_bridge_publish_errors_total",
  "brewcast_auth_failures_total",
  "brewcast_mqtt_connected_clients",
  "brewcast_deliveries_total",
  "brewcast_http_requests_total",
  "brewcast_webhook_deliveries_total",
  "brewcast_webhook_endpoint_lag_events",
  "brewcast_webhook_endpoint_status",
  "brewcast_webhook_endpoints",
]);

interface Rule {
  alert: string;
  expr: string;
  labels?: { severity?: string };
  annotations?: { summary?: string; description?: string };
}
const rules = (parse(readFileSync(RULES, "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap(
  (group) => group.rules,
);

describe("ops/prometheus/alerts.yml", () => {
  it("alerts on lag, a stalled bridge, auth failures, degraded or suspended partners and no leader", () => {
    expect(rules.map((rule) => rule.alert)).toEqual(
      expect.arrayContaining([
        "BrewcastPartnerLagEvents",
        "BrewcastPartnerLagSeconds",
        "BrewcastBridgeStalled",
        "BrewcastAuthFailureSpike",
        "BrewcastPartnerDegraded",
        "BrewcastPartnerSuspended",
        "BrewcastNoBridgeLeader",
        "BrewcastWebhookEndpointFailing",
        "BrewcastWebhookEndpointDisabled",
      ]),
    );
    for (const rule of rules) {
      expect(["info", "warning", "critical"], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
    }
  });

  it("uses only metrics brewcast exports", () => {
    for (const rule of rules) {
      for (const [name] of rule.expr.matchAll(/\bbrewcast_[a-z_]+/g)) {
        expect(EXPORTED, `${rule.alert}: ${name}`).toContain(name);
      }
    }
  });
});

const promtool = !spawnSync("promtool", ["--version"], { stdio: "ignore" }).error;
if (!promtool) {
  process.stdout.write(
    "test/ops/alerts.test.ts: promtool not installed (Debian: apt-get install prometheus); `promtool check rules` and `promtool test rules` skipped\n",
  );
}

describe.skipIf(!promtool)("promtool", () => {
  const run = (args: string[]) => {
    const result = spawnSync("promtool", args, { encoding: "utf8", timeout: 20_000 });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  };

  it("check rules: the rules are valid", () => {
    const { status, output } = run(["check", "rules", RULES]);
    expect(status, output).toBe(0);
    expect(output).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  it("test rules: lag, stalled bridge, degraded partner and no-leader alerts fire when they should", () => {
    const { status, output } = run(["test", "rules", RULE_TESTS]);
    expect(status, output).toBe(0);
    expect(output).toContain("SUCCESS");
  });
});
