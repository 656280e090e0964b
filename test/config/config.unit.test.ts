/**
 * Configuration: environment only, validated once, one error naming every
 * bad variable with its value, unknown BREWCAST_* variables reported,
 * secrets redacted. (The CLI that reads it: test/cli/cli.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactConfig } from "../../src/config/load-config.ts";

const TOKEN = "admin-token-0123456789-secret";

describe("loadConfig", () => {
  it("applies the documented defaults and freezes the result", () => {
    const { config, unknownVariables, warnings } = loadConfig({});
    expect(config).toMatchObject({
      BREWCAST_DATA_DIR: "./data",
      BREWCAST_HOST: "127.0.0.1",
      BREWCAST_HTTP_PORT: 8080,
      BREWCAST_MQTT_PORT: 1883,
      LOG_LEVEL: "info",
    });
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.REDIS_URL).toBeUndefined();
    expect(config.BREWCAST_MQTTS_PORT).toBeUndefined();
    expect(config.BREWCAST_RETENTION_DAYS).toBeUndefined();
    expect(config.BREWCAST_ADMIN_TOKEN).toBeUndefined();
    expect(Object.isFrozen(config)).toBe(true);
    expect(unknownVariables).toEqual([]);
    // An unset admin token is warned about once, by `start`, which generates the token.
    expect(warnings).toEqual([]);
  });

  it("reads the values it is given", () => {
    const { config, warnings } = loadConfig({
      DATABASE_URL: "postgres://app@db:5432/brewcast",
      BREWCAST_HTTP_PORT: "0",
      BREWCAST_MQTT_PORT: "1884",
      BREWCAST_RETENTION_DAYS: "30",
      BREWCAST_ADMIN_TOKEN: TOKEN,
      LOG_LEVEL: "debug",
    });
    expect(config).toMatchObject({
      DATABASE_URL: "postgres://app@db:5432/brewcast",
      BREWCAST_HTTP_PORT: 0,
      BREWCAST_MQTT_PORT: 1884,
      BREWCAST_RETENTION_DAYS: 30,
      BREWCAST_ADMIN_TOKEN: TOKEN,
      LOG_LEVEL: "debug",
    });
    expect(warnings).toEqual([]);
  });

  it("treats an empty value as unset (a shell `VAR=`), for numbers too", () => {
    const { config } = loadConfig({
      BREWCAST_HTTP_PORT: "",
      BREWCAST_MQTTS_PORT: "",
      BREWCAST_RETENTION_DAYS: "",
      BREWCAST_DATA_DIR: "",
      DATABASE_URL: "",
    });
    expect(config.BREWCAST_HTTP_PORT).toBe(8080);
    expect(config.BREWCAST_MQTTS_PORT).toBeUndefined();
    expect(config.BREWCAST_RETENTION_DAYS).toBeUndefined();
    expect(config.BREWCAST_DATA_DIR).toBe("./data");
    expect(config.DATABASE_URL).toBeUndefined();
  });

  it("refuses bad values with one error that names every bad variable", () => {
    const bad = {
      BREWCAST_HTTP_PORT: "http",
      BREWCAST_MQTT_PORT: "70000",
      LOG_LEVEL: "loud",
      DATABASE_URL: "mysql://db/x",
      BREWCAST_ADMIN_TOKEN: "short",
      BREWCAST_RETENTION_DAYS: "0",
      REDIS_URL: "not a url",
    };
    let error: unknown;
    try {
      loadConfig({ ...bad, BREWCAST_HOST: "0.0.0.0" });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    expect(configError.problems.map((p) => p.variable).sort()).toEqual(Object.keys(bad).sort());
    expect(configError.message.split("\n")).toHaveLength(1);
    for (const name of Object.keys(bad)) expect(configError.message).toContain(name);
    expect(configError.message).not.toContain("BREWCAST_HOST");
  });

  it("shows each bad value after its variable, secrets hidden", () => {
    const message = (() => {
      try {
        loadConfig({
          BREWCAST_HTTP_PORT: "abc",
          BREWCAST_ADMIN_TOKEN: "tooshort-secret",
          DATABASE_URL: "mysql://app:pa55word@db/x",
        });
      } catch (error) {
        return (error as Error).message;
      }
      return "no error";
    })();
    expect(message).toContain("BREWCAST_HTTP_PORT=abc: not a number");
    expect(message).toContain("BREWCAST_ADMIN_TOKEN=***: must be at least 16 characters");
    expect(message).toContain("DATABASE_URL=mysql://app:***@db/x: must be a URL");
    expect(message).not.toContain("tooshort-secret");
    expect(message).not.toContain("pa55word");
  });

  it("refuses settings that only make sense together", () => {
    expect(() => loadConfig({ BREWCAST_MQTTS_PORT: "8883" })).toThrow(/BREWCAST_MQTTS_PORT/);
    expect(() => loadConfig({ BREWCAST_TLS_CA: "/ca.pem" })).toThrow(/BREWCAST_TLS_CA/);
  });

  it("reports unknown BREWCAST_* variables, and only those", () => {
    const { unknownVariables } = loadConfig({
      BREWCAST_HTTP_PROT: "9000",
      BREWCAST_ADMIN_TOKN: "x",
      BREWCAST_HTTP_PORT: "9000",
      HOME: "/root",
      PORT: "1",
    });
    expect(unknownVariables.sort()).toEqual(["BREWCAST_ADMIN_TOKN", "BREWCAST_HTTP_PROT"]);
  });

  it("redacts the admin token fully and URL passwords only", () => {
    const { config } = loadConfig({
      BREWCAST_ADMIN_TOKEN: TOKEN,
      DATABASE_URL: "postgres://app:pg-pa55word@db.internal:5432/brewcast",
      REDIS_URL: "redis://:redis-pa55word@cache:6379",
      BREWCAST_MQTT_URL: "mqtts://bridge:mqtt-pa55word@broker:8883",
    });
    const redacted = redactConfig(config);
    const text = JSON.stringify(redacted);
    for (const secret of [TOKEN, "pg-pa55word", "redis-pa55word", "mqtt-pa55word"]) {
      expect(text).not.toContain(secret);
    }
    expect(redacted.BREWCAST_ADMIN_TOKEN).toBe("***");
    expect(redacted.DATABASE_URL).toBe("postgres://app:***@db.internal:5432/brewcast");
    expect(String(redacted.REDIS_URL)).toContain("cache:6379");
    expect(String(redacted.BREWCAST_MQTT_URL)).toContain("bridge:***@broker:8883");
    expect(redacted.BREWCAST_HTTP_PORT).toBe(8080);
    // A URL without a password is shown as it is.
    expect(redactConfig(loadConfig({ DATABASE_URL: "postgres://app@db/x" }).config).DATABASE_URL).toBe(
      "postgres://app@db/x",
    );
  });
});
