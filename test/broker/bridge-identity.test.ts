/**
 * The bridge's internal identity: a bridge in another process logs in to
 * brewcast brokers as `brewcast-bridge` with BREWCAST_BRIDGE_SECRET and is
 * the only login allowed to publish events, cursors and partner status.
 */
import { describe, expect, it } from "vitest";
import { createMqttPublisher } from "../../src/bridge/mqtt-publisher.ts";
import { BRIDGE_USERNAME } from "../../src/broker/index.ts";
import { createOrders, range, recordPartner, startBridge } from "../bridge/helpers.ts";
import { useCleanups } from "../support/cleanups.ts";
import { closed, connackCode, connect, subscribeGranted } from "../support/mqtt.ts";
import { silentLog } from "../support/test-db.ts";
import { until } from "../support/wait.ts";
import { startHarness } from "./helpers.ts";

const SECRET = "bridge-secret-0123456789";
const onCleanup = useCleanups();

describe("the bridge identity", () => {
  it("publishes events a backend subscriber receives, through a bridge in MQTT mode", async () => {
    const h = await startHarness({ bridgeSecret: SECRET });
    onCleanup(() => h.close());
    const partner = await h.seed(2);
    const recorder = await recordPartner(h.url, partner.id, {
      username: partner.backend.id,
      password: partner.backend.secret,
    });
    onCleanup(() => recorder.close());
    const publisher = await createMqttPublisher({
      url: h.url,
      log: silentLog,
      username: BRIDGE_USERNAME,
      password: SECRET,
    });
    onCleanup(() => publisher.close());
    const bridge = await startBridge(h.testDb.db, publisher);
    onCleanup(() => bridge.stop());
    await createOrders(h.testDb.db, partner.id, partner.shops, 30);
    await until(() => recorder.seqs.length >= 30, 15_000, "30 events");
    expect(recorder.seqs).toEqual(range(1, 30));
    await until(() => recorder.cursors.some((c) => c.seq === 30), 15_000, "the cursor");
  });

  it("refuses a wrong secret, a will, and any login when no secret is configured (CONNACK 4)", async () => {
    const h = await startHarness({ bridgeSecret: SECRET });
    onCleanup(() => h.close());
    expect(await connackCode(h.url, { username: BRIDGE_USERNAME, password: "not-the-secret-at-all" })).toBe(
      4,
    );
    expect(
      await connackCode(h.url, {
        username: BRIDGE_USERNAME,
        password: SECRET,
        will: { topic: "partners/x/cursor", payload: Buffer.from("{}"), qos: 0, retain: true },
      }),
    ).toBe(4);
    const without = await h.extraBroker({ bridgeSecret: undefined });
    expect(await connackCode(without.url, { username: BRIDGE_USERNAME, password: SECRET })).toBe(4);
  });

  it("may not subscribe, and only publishes to event, cursor and status topics", async () => {
    const h = await startHarness({ bridgeSecret: SECRET });
    onCleanup(() => h.close());
    const client = await connect(h.url, { username: BRIDGE_USERNAME, password: SECRET });
    onCleanup(() => client.endAsync());
    expect(await subscribeGranted(client, "partners/+/cursor")).toBe(128);
    // A device's presence topic is the device's, not the bridge's: the publish closes the connection.
    const gone = closed(client);
    client.publish("partners/acme/devices/cr-abcdefghijklmnopqrst/status", "spoofed");
    await gone;
  });
});
