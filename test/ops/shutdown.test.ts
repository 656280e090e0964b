/**
 * SIGTERM under load: `brewcast start` stops accepting, finishes in-flight
 * publishes, commits its cursors and exits 0 within 10 s; a following
 * bridge start continues from the durable cursor with no gap.
 * Needs Postgres (the second bridge reads the first process's database).
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createOrders, embeddedTarget, range, recordPartner, startBridge } from "../bridge/helpers.ts";
import { useCleanups } from "../support/cleanups.ts";
import { createTestDb, DATABASE_URL } from "../support/test-db.ts";
import { until } from "../support/wait.ts";

const BIN = fileURLToPath(new URL("../../bin/brewcast.js", import.meta.url));
const ADMIN = "shutdown-test-admin-token";

const onCleanup = useCleanups();

describe.skipIf(!DATABASE_URL)("graceful shutdown", () => {
  it("exits 0 within 10 s of SIGTERM under load, and the next bridge start leaves no gap", async () => {
    const t = await createTestDb();
    onCleanup(() => t.cleanup());
    const child = spawn(process.execPath, [BIN, "start"], {
      env: {
        PATH: process.env.PATH,
        DATABASE_URL: t.url,
        BREWCAST_HTTP_PORT: "0",
        BREWCAST_MQTT_PORT: "0",
        BREWCAST_ADMIN_TOKEN: ADMIN,
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    onCleanup(async () => {
      if (child.exitCode === null) child.kill("SIGKILL");
      await exited;
    });
    let output = "";
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    await until(() => output.includes('"msg":"listening"'), 60_000, "brewcast to listen");
    const listening = JSON.parse(output.split("\n").find((line) => line.includes('"msg":"listening"'))!) as {
      http: number;
      mqtt: number;
    };
    const api = `http://127.0.0.1:${listening.http}`;
    const admin = async (path: string, body: unknown) => {
      const response = await fetch(`${api}/admin/v1${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(201);
      return response.json();
    };
    await admin("/partners", { id: "shut", name: "Shutdown" });
    await admin("/partners/shut/shops", { id: "s1", name: "One" });
    const backend = (await admin("/partners/shut/credentials", { kind: "backend" })) as {
      id: string;
      secret: string;
    };

    const first = await recordPartner(`mqtt://127.0.0.1:${listening.mqtt}`, "shut", {
      username: backend.id,
      password: backend.secret,
    });
    // Load: orders keep coming until the server stops answering.
    let accepted = 0;
    const load = (async () => {
      for (;;) {
        const response = await fetch(`${api}/v1/orders`, {
          method: "POST",
          headers: { authorization: `Bearer ${backend.secret}`, "content-type": "application/json" },
          body: JSON.stringify({ shop_id: "s1", items: [{ sku: "latte", quantity: 1 }] }),
        }).catch(() => undefined);
        if (response?.status !== 201) return;
        accepted++;
      }
    })();
    await until(() => first.seqs.length >= 50, 30_000, "events flowing");
    const termAt = Date.now();
    child.kill("SIGTERM");
    const code = await exited;
    if (code !== 0)
      console.log(
        "CHILD OUTPUT",
        output
          .split("\n")
          .filter((l) => /"level":[45]|shutting|rror|stopped/.test(l))
          .join("\n"),
        stderr,
      );
    expect(code).toBe(0);
    expect(Date.now() - termAt).toBeLessThan(10_000);
    await load;
    await first.close().catch(() => undefined);

    const [{ head_seq: head, published }] = (await t.db.query(
      `SELECT p.head_seq, coalesce(c.published_seq, 0) AS published
       FROM partners p LEFT JOIN bridge_cursors c ON c.partner_id = p.id WHERE p.id = 'shut'`,
    )) as [{ head_seq: number; published: number }];
    expect(head).toBeGreaterThanOrEqual(accepted);
    // What the first process published is covered by its durable cursor.
    expect(first.firstSeen()).toEqual(range(1, first.firstSeen().length));
    expect(published).toBeLessThanOrEqual(head);

    // A following bridge publishes the rest, from the durable cursor on.
    const broker = await embeddedTarget(t.db);
    onCleanup(() => broker.close());
    const second = await recordPartner(broker.url, "shut", {
      username: backend.id,
      password: backend.secret,
    });
    onCleanup(() => second.close());
    const bridge = await startBridge(t.db, broker.publisher);
    onCleanup(() => bridge.stop());
    await createOrders(t.db, "shut", ["s1"], 1);
    await until(() => second.seqs.includes(head + 1), 20_000, "the next bridge to reach the new head");
    const seen = new Set([...first.seqs, ...second.seqs]);
    expect(range(1, head + 1).filter((seq) => !seen.has(seq))).toEqual([]);
    expect(Math.min(...second.seqs)).toBe(published + 1);
  }, 120_000);
});
