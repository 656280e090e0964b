/**
 * Postgres restarts mid-stream (`pg_ctlcluster … restart`): writers retry,
 * the bridge loses its lock and connections, takes the lock again and
 * continues from its durable cursor. No gap.
 *
 * Disruptive for anything else using the server, so it lives in the serial
 * suite (run after the main one by `npm test`) and only where restarting
 * the local cluster is allowed: in CI, or with BREWCAST_TEST_PG_RESTART=1.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createOrderStore } from "../../src/store/orders.ts";
import { createOrders, embeddedTarget, range, recordPartner, startBridge } from "../bridge/helpers.ts";
import { useCleanups } from "../support/cleanups.ts";
import { seedPartner } from "../support/fixtures.ts";
import { createTestDb, DATABASE_URL } from "../support/test-db.ts";
import { until } from "../support/wait.ts";

const mayRestart =
  Boolean(DATABASE_URL) &&
  /@(127\.0\.0\.1|localhost)[:/]/.test(DATABASE_URL ?? "") &&
  existsSync("/etc/postgresql") &&
  (process.env.CI === "true" || process.env.BREWCAST_TEST_PG_RESTART === "1");

const restartPostgres = () => {
  const [version] = readdirSync("/etc/postgresql");
  execFileSync("pg_ctlcluster", ["--skip-systemctl-redirect", version!, "main", "restart"], {
    stdio: "inherit",
  });
};

const onCleanup = useCleanups({ ignoreErrors: true });

describe.skipIf(!mayRestart)("bridge across a Postgres restart", () => {
  it("continues from the durable cursor with no gap", async () => {
    const t = await createTestDb();
    onCleanup(() => t.cleanup());
    const partner = await seedPartner(t.db, { shops: 2 });
    const broker = await embeddedTarget(t.db);
    onCleanup(() => broker.close());
    const recorder = await recordPartner(broker.url, partner.id, {
      username: partner.backend.id,
      password: partner.backend.secret,
    });
    onCleanup(() => recorder.close());
    const bridge = await startBridge(t.db, broker.publisher, { backoffInitialMs: 50, backoffMaxMs: 1_000 });
    onCleanup(() => bridge.stop());
    const roles: string[] = [];
    bridge.on("role", (role) => roles.push(role));

    await createOrders(t.db, partner.id, partner.shops, 100);
    await until(() => recorder.firstSeen().length >= 100, 15_000, "the first 100 events");

    // Writers keep going through the restart, retrying what failed.
    const orders = createOrderStore(t.db);
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          await orders.create(
            { partnerId: partner.id, shopId: null },
            { shop_id: partner.shops[i % 2]!, items: [{ sku: "flat-white", quantity: 1 }] },
          );
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    })();
    await until(() => recorder.firstSeen().length >= 150, 15_000, "events flowing before the restart");
    const startedAt = async () =>
      (
        (await t.db.query<{ at: Date }>("SELECT pg_postmaster_start_time() AS at")) as [{ at: Date }]
      )[0].at.getTime();
    const before = await startedAt();
    restartPostgres();
    await until(
      () => roles.includes("standby") && roles.at(-1) === "leader",
      30_000,
      "the bridge to lead again",
    );
    const [{ head_seq: headAfterRestart }] = (await t.db.query<{ head_seq: number }>(
      "SELECT head_seq FROM partners WHERE id = $1",
      [partner.id],
    )) as [{ head_seq: number }];
    await until(
      () => recorder.firstSeen().length >= headAfterRestart + 20,
      30_000,
      "events after the restart",
    );
    stop = true;
    await writer;
    const [{ head_seq: head }] = (await t.db.query<{ head_seq: number }>(
      "SELECT head_seq FROM partners WHERE id = $1",
      [partner.id],
    )) as [{ head_seq: number }];
    await until(() => recorder.firstSeen().length >= head, 30_000, "every event");
    expect(recorder.firstSeen()).toEqual(range(1, head));
    // The server really restarted under the writers and the bridge.
    expect(await startedAt()).toBeGreaterThan(before);
  }, 120_000);
});
