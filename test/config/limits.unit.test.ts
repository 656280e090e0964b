/**
 * The limits before login and the metrics token as configuration: their
 * defaults, the one rule between them, and the warning an exposed /metrics gets.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactConfig } from "../../src/config/load-config.ts";
import { fileDescriptorBudget } from "../../src/ops/fd-budget.ts";

describe("limits before login", () => {
  it("have defaults that fit a 20,000 open-files limit with a TLS listener", () => {
    const { config } = loadConfig({
      BREWCAST_MQTTS_PORT: "8883",
      BREWCAST_TLS_CERT: "c",
      BREWCAST_TLS_KEY: "k",
    });
    expect(config).toMatchObject({
      BREWCAST_MAX_CONNECTIONS: 5_000,
      BREWCAST_MAX_PENDING_PER_ADDRESS: 100,
      BREWCAST_CONNECT_TIMEOUT_MS: 5_000,
      BREWCAST_HTTP_MAX_CONNECTIONS: 1_000,
      BREWCAST_HTTP_HEADERS_TIMEOUT_MS: 10_000,
      BREWCAST_HTTP_REQUEST_TIMEOUT_MS: 30_000,
    });
    expect(fileDescriptorBudget(config, "all", 20_000)).toEqual({ needed: 16_200, limit: 20_000 });
    // A bridge alone holds no MQTT listener.
    expect(fileDescriptorBudget(config, "bridge", 20_000).needed).toBe(1_200);
  });

  it("refuse a headers timeout longer than the request timeout, naming the variable", () => {
    expect(() =>
      loadConfig({ BREWCAST_HTTP_HEADERS_TIMEOUT_MS: "40000", BREWCAST_HTTP_REQUEST_TIMEOUT_MS: "30000" }),
    ).toThrow(ConfigError);
    expect(() =>
      loadConfig({ BREWCAST_HTTP_HEADERS_TIMEOUT_MS: "40000", BREWCAST_HTTP_REQUEST_TIMEOUT_MS: "30000" }),
    ).toThrow(/BREWCAST_HTTP_HEADERS_TIMEOUT_MS/);
  });
});

describe("BREWCAST_METRICS_TOKEN", () => {
  const TOKEN = "metrics-token-0123456789";
  it("is warned about when /metrics is served beyond loopback without it, and redacted when set", () => {
    expect(loadConfig({ BREWCAST_HOST: "0.0.0.0" }).warnings.join("\n")).toContain("BREWCAST_METRICS_TOKEN");
    const { config, warnings } = loadConfig({ BREWCAST_HOST: "0.0.0.0", BREWCAST_METRICS_TOKEN: TOKEN });
    expect(warnings.join("\n")).not.toContain("BREWCAST_METRICS_TOKEN");
    expect(JSON.stringify(redactConfig(config))).not.toContain(TOKEN);
    expect(loadConfig({}).warnings.join("\n")).not.toContain("BREWCAST_METRICS_TOKEN");
  });
});
