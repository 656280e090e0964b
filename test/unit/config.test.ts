/**
 * Configuration: environment only, validated once, one error naming every
 * bad variable with its value, unknown BREWCAST_* variables reported,
 * secrets redacted; and the CLI's check-config, migrate and start failures
 * as an operator sees them: one line naming the variable to fix, ports
 * checked before the database opens, the admin-token warning once.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, createServer, type Server } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactConfig } from "../../src/config/load-config.ts";
import { runCli, waitFor } from "../support/http.ts";

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

describe("brewcast CLI", () => {
  it("check-config prints the effective config, redacted, and the unknown variables", async () => {
    const result = await runCli(["check-config"], {
      BREWCAST_ADMIN_TOKEN: TOKEN,
      DATABASE_URL: "postgres://app:pg-pa55word@db:5432/brewcast",
      BREWCAST_HTTP_PORT: "9090",
      BREWCAST_TYPO: "1",
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toContain(TOKEN);
    expect(result.stdout).not.toContain("pg-pa55word");
    const printed = JSON.parse(result.stdout);
    expect(printed.config).toMatchObject({
      BREWCAST_HTTP_PORT: 9090,
      BREWCAST_ADMIN_TOKEN: "***",
      DATABASE_URL: "postgres://app:***@db:5432/brewcast",
    });
    expect(printed.unknownVariables).toEqual(["BREWCAST_TYPO"]);
  });

  it("a bad value exits 1 with one line naming the variable", async () => {
    const result = await runCli(["check-config"], { BREWCAST_HTTP_PORT: "eighty", LOG_LEVEL: "loud" });
    expect(result.code).toBe(1);
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("BREWCAST_HTTP_PORT");
    expect(lines[0]).toContain("LOG_LEVEL");
    expect(result.stdout).toBe("");
  });

  describe("start", () => {
    let occupier: Server | undefined;
    afterEach(async () => {
      await new Promise<void>((resolve) => (occupier ? occupier.close(() => resolve()) : resolve()));
      occupier = undefined;
    });

    it("exits 1 with one stderr line naming BREWCAST_HTTP_PORT when the port is taken", async () => {
      const server = createServer();
      occupier = server;
      const port = await new Promise<number>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port));
      });
      const result = await runCli(["start"], {
        BREWCAST_HTTP_PORT: String(port),
        BREWCAST_HOST: "127.0.0.1",
        BREWCAST_DATA_DIR: "memory://",
        BREWCAST_MQTT_PORT: "0",
        BREWCAST_ADMIN_TOKEN: TOKEN,
        LOG_LEVEL: "warn",
      });
      expect(result.code, result.stderr).toBe(1);
      const lines = result.stderr.trimEnd().split("\n");
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toContain(`BREWCAST_HTTP_PORT=${port}`);
      expect(lines[0]).toContain("in use");
    }, 60_000);
  });
});

/** A port nothing listens on: bound, then released. */
const closedPort = async (): Promise<number> => {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
};

describe("brewcast CLI start-up messages", () => {
  const occupiers: Server[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const server of occupiers.splice(0))
      await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const occupy = async (): Promise<number> => {
    const server = createServer().listen(0, "127.0.0.1");
    occupiers.push(server);
    await once(server, "listening");
    return (server.address() as AddressInfo).port;
  };

  it("an unknown command fails before the configuration is read: no token, no warning", async () => {
    const result = await runCli(["strat"], {});
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^brewcast: unknown command 'strat'/);
    expect(result.stdout).toBe("");
    expect(result.stderr).not.toMatch(/admin|token/i);
  });

  it("checks the MQTT port before opening the database, and says how to fix it", async () => {
    const port = await occupy();
    const result = await runCli(["start"], {
      BREWCAST_HTTP_PORT: "0",
      BREWCAST_MQTT_PORT: String(port),
      BREWCAST_DATA_DIR: "memory://",
      BREWCAST_ADMIN_TOKEN: TOKEN,
      LOG_LEVEL: "info",
    });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr.trimEnd().split("\n")).toEqual([
      `brewcast: BREWCAST_MQTT_PORT=${port}: 127.0.0.1:${port} is already in use (choose another port, or 0 for any free one)`,
    ]);
    // The database was never opened: the failure came first.
    expect(result.stdout).not.toContain("database");
    expect(result.stdout).not.toContain("migrations");
  }, 60_000);

  it("blames an address that is not this machine's on BREWCAST_HOST, with its value", async () => {
    for (const host of ["192.0.2.1", "no-such-host.invalid"]) {
      const result = await runCli(["start"], {
        BREWCAST_HOST: host,
        BREWCAST_HTTP_PORT: "0",
        BREWCAST_MQTT_PORT: "0",
        BREWCAST_MQTTS_PORT: "",
        BREWCAST_DATA_DIR: "memory://",
        BREWCAST_ADMIN_TOKEN: TOKEN,
        LOG_LEVEL: "error",
      });
      expect(result.code, result.stderr).toBe(1);
      const lines = result.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(`^brewcast: BREWCAST_HOST=${host.replaceAll(".", "\\.")}: cannot listen there`),
      );
      expect(lines[0]).not.toContain("_PORT");
    }
  }, 60_000);

  it("shows a bad port's value", async () => {
    const result = await runCli(["start"], { BREWCAST_HTTP_PORT: "abc" });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("BREWCAST_HTTP_PORT=abc: not a number");
  });

  it("names DATABASE_URL, password hidden, when the database cannot be reached", async () => {
    const port = await closedPort();
    const result = await runCli(["migrate"], {
      DATABASE_URL: `postgres://brewcast:pa55word@127.0.0.1:${port}/brewcast`,
      LOG_LEVEL: "error",
    });
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split("\n")).toEqual([
      `brewcast: DATABASE_URL=postgres://brewcast:***@127.0.0.1:${port}/brewcast: cannot connect (connect ECONNREFUSED 127.0.0.1:${port})`,
    ]);
  });

  it("migrate says what it applied, and that nothing was left to apply the second time", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "brewcast-migrate-"));
    dirs.push(dir);
    const env = { BREWCAST_DATA_DIR: dir, LOG_LEVEL: "info" };
    const messages = (stdout: string) =>
      stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as { msg: string; applied?: string[] })
        .filter((line) => line.applied !== undefined);
    const first = await runCli(["migrate"], env);
    expect(first.code, first.stderr).toBe(0);
    expect(messages(first.stdout)).toEqual([
      expect.objectContaining({
        msg: "migrations applied",
        applied: expect.arrayContaining(["0001_event_log"]),
      }),
    ]);
    const second = await runCli(["migrate"], env);
    expect(second.code, second.stderr).toBe(0);
    expect(messages(second.stdout)).toEqual([
      expect.objectContaining({ msg: "no migrations to apply: the database is up to date", applied: [] }),
    ]);
  }, 60_000);

  it("start without BREWCAST_ADMIN_TOKEN warns once, with the generated token", async () => {
    const child = spawn(process.execPath, ["bin/brewcast.js", "start"], {
      cwd: new URL("../..", import.meta.url),
      env: {
        PATH: process.env.PATH ?? "",
        BREWCAST_HTTP_PORT: "0",
        BREWCAST_MQTT_PORT: "0",
        BREWCAST_DATA_DIR: "memory://",
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = once(child, "exit");
    let stdout = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    try {
      await waitFor("listening", () => stdout.includes('"msg":"listening"'), 60_000, 50);
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
    const warnings = stdout.split("\n").filter((line) => /admin.token/i.test(line));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]!).admin_token).toMatch(/^[\w-]{32}$/);
  }, 90_000);
});
