/**
 * The broker the bridge publishes to restarts mid-stream: the bridge backs
 * off, reconnects, and continues from its durable cursor. No gap.
 */

import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createMqttPublisher } from "../../src/bridge/mqtt-publisher.ts";
import { useCleanups } from "../support/cleanups.ts";
import { seedPartner } from "../support/fixtures.ts";
import { privateMosquitto } from "../support/mosquitto.ts";
import { createTestDb, silentLog } from "../support/test-db.ts";
import { until } from "../support/wait.ts";
import { createOrders, range, recordPartner, startBridge } from "./helpers.ts";

const onCleanup = useCleanups();

describe("bridge across a broker restart", () => {
  it("publishes every event exactly in order once the broker is back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "brewcast-mosquitto-"));
    onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
    const mosquitto = await privateMosquitto(dir);
    onCleanup(() => mosquitto.stop());
    const t = await createTestDb();
    onCleanup(() => t.cleanup());
    const partner = await seedPartner(t.db, { shops: 2 });

    const recorder = await recordPartner(mosquitto.url, partner.id, {
      clientId: `restart-${randomBytes(3).toString("hex")}`,
      clean: false,
    });
    // The subscriber reconnects by itself and resumes its persistent session.
    recorder.client.options.reconnectPeriod = 100;
    onCleanup(() => recorder.close());
    const publisher = await createMqttPublisher({ url: mosquitto.url, log: silentLog });
    onCleanup(() => publisher.close());
    const bridge = await startBridge(t.db, publisher, {
      backoffInitialMs: 50,
      backoffMaxMs: 500,
      publishTimeoutMs: 2_000,
    });
    onCleanup(() => bridge.stop());
    const failures: string[] = [];
    bridge.on("partner-error", (e) => failures.push(e.error.message));

    await createOrders(t.db, partner.id, partner.shops, 50);
    await until(() => recorder.firstSeen().length >= 50, 10_000, "the first 50 events");

    await mosquitto.stop();
    await createOrders(t.db, partner.id, partner.shops, 50);
    await until(() => failures.length > 0, 10_000, "the bridge to notice the broker is gone");
    await mosquitto.start();
    await createOrders(t.db, partner.id, partner.shops, 50);

    await until(() => recorder.firstSeen().length >= 150, 30_000, "all 150 events");
    expect(recorder.firstSeen()).toEqual(range(1, 150));
  }, 60_000);
});
