/**
 * The CLI's check-config, migrate and start failures as an operator sees
 * them, with `node bin/brewcast.js` as a child process: one line naming the
 * variable to fix, ports checked before the database opens, the admin-token
 * warning once.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, createServer, type Server } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { runCli } from "../support/brewcast-process.ts";
import { freePort } from "../support/ports.ts";
import { createTestDb, DATABASE_URL } from "../support/test-db.ts";
import { waitFor } from "../support/wait.ts";

const TOKEN = "admin-token-0123456789-secret";

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
const closedPort = freePort;

describe("brewcast CLI start-up messages", () => {
  const occupiers: Server[] = [];
  const dirs: string[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const server of occupiers.splice(0))
      await new Promise<void>((resolve) => server.close(() => resolve()));
    for (const cleanup of cleanups.splice(0)) await cleanup();
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
    // An empty Postgres database where there is one (seconds); otherwise an embedded data dir,
    // which takes PGlite tens of seconds to create on a busy machine.
    let env: Record<string, string>;
    if (DATABASE_URL) {
      const empty = await createTestDb("pg", { migrated: false, poolSize: 1 });
      cleanups.push(empty.cleanup);
      env = { DATABASE_URL: empty.url!, LOG_LEVEL: "info" };
    } else {
      const dir = mkdtempSync(path.join(os.tmpdir(), "brewcast-migrate-"));
      dirs.push(dir);
      env = { BREWCAST_DATA_DIR: dir, LOG_LEVEL: "info" };
    }
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
  }, 120_000);

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
