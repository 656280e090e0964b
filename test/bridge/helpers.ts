/**
 * Bridge test support: a bridge wired to a real broker (embedded Aedes or
 * the Mosquitto on 127.0.0.1:1883), and subscribers that record seqs.
 */
import type { MqttClient } from "mqtt";
import { Bridge, type BridgeOptions } from "../../src/bridge/bridge.ts";
import { createMqttPublisher } from "../../src/bridge/mqtt-publisher.ts";
import type { Publisher } from "../../src/bridge/ports.ts";
import { type Broker, startBroker } from "../../src/broker/index.ts";
import type { OrderEvent } from "../../src/domain/events.ts";
import { createAccessFeed } from "../../src/store/access-feed.ts";
import { createCredentialStore } from "../../src/store/credentials.ts";
import type { Db } from "../../src/store/db.ts";
import { createDeliveryLog } from "../../src/store/delivery-log.ts";
import { createLeaderLock } from "../../src/store/leader-lock.ts";
import { createSessionLog, createSessionStore } from "../../src/store/mqtt-sessions.ts";
import { createOrderStore } from "../../src/store/orders.ts";
import { connect } from "../support/mqtt.ts";
import { silentLog } from "../support/test-db.ts";

export const MOSQUITTO_URL = "mqtt://127.0.0.1:1883";

export interface BrokerTarget {
  url: string;
  publisher: Publisher;
  /** Credentials for subscribers: none for Mosquitto (anonymous), a backend credential for brewcast. */
  close(): Promise<void>;
  broker: Broker | undefined;
}

/** The embedded Aedes broker on a free port, with the bridge publishing in-process as main.ts wires it. */
export const embeddedTarget = async (db: Db): Promise<BrokerTarget> => {
  const accessChanges = await createAccessFeed(db);
  const broker = await startBroker({
    host: "127.0.0.1",
    mqttPort: 0,
    maxPacketBytes: 65_536,
    maxConnectionsPerPartner: 100,
    drainTimeoutMs: 5_000,
    sessions: { store: createSessionStore(db), log: createSessionLog(db) },
    sessionTtlSeconds: 3_600,
    log: silentLog,
    verifier: createCredentialStore(db, { accessChanges }),
    accessChanges,
  });
  return {
    url: `mqtt://127.0.0.1:${broker.ports.mqtt}`,
    broker,
    publisher: { publish: (message) => broker.publish(message) },
    async close() {
      await broker.close();
      await accessChanges.close();
    },
  };
};

/** The real Mosquitto on 127.0.0.1:1883, reached over MQTT as a separate `brewcast bridge` would. */
export const mosquittoTarget = async (): Promise<BrokerTarget> => {
  const publisher = await createMqttPublisher({ url: MOSQUITTO_URL, log: silentLog });
  return { url: MOSQUITTO_URL, broker: undefined, publisher, close: () => publisher.close() };
};

export const startBridge = async (db: Db, publisher: Publisher, options: Partial<BridgeOptions> = {}) => {
  const bridge = new Bridge({
    log: silentLog,
    source: await createDeliveryLog(db),
    publisher,
    lock: createLeaderLock(db),
    sweepIntervalMs: 200,
    ...options,
  });
  await bridge.start();
  return bridge;
};

export interface SeqRecorder {
  client: MqttClient;
  /** Seqs in arrival order, duplicates included. */
  seqs: number[];
  events: OrderEvent[];
  cursors: { topic: string; seq: number; published_at: string; retain: boolean }[];
  /** First occurrences of each seq, in arrival order. */
  firstSeen(): number[];
  close(): Promise<void>;
}

export const recordPartner = async (
  url: string,
  partnerId: string,
  options: { username?: string; password?: string; clientId?: string; clean?: boolean } = {},
): Promise<SeqRecorder> => {
  const client = await connect(url, { ...options, clean: options.clean ?? true });
  const seqs: number[] = [];
  const events: OrderEvent[] = [];
  const cursors: SeqRecorder["cursors"] = [];
  client.on("message", (topic, payload, packet) => {
    const body = JSON.parse(payload.toString());
    if (topic.endsWith("/cursor")) {
      cursors.push({ topic, seq: body.seq, published_at: body.published_at, retain: packet.retain });
    } else {
      seqs.push(body.seq);
      events.push(body);
    }
  });
  await client.subscribeAsync(
    [
      `partners/${partnerId}/shops/+/orders/+`,
      `partners/${partnerId}/cursor`,
      `partners/${partnerId}/shops/+/cursor`,
    ],
    { qos: 1 },
  );
  return {
    client,
    seqs,
    events,
    cursors,
    firstSeen() {
      const seen = new Set<number>();
      const out: number[] = [];
      for (const seq of seqs) {
        if (seen.has(seq)) continue;
        seen.add(seq);
        out.push(seq);
      }
      return out;
    },
    close: () => client.endAsync(),
  };
};

export const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Creates `count` orders for a partner across its shops, through the same store code the API uses. */
export const createOrders = async (
  db: Db,
  partnerId: string,
  shops: string[],
  count: number,
): Promise<void> => {
  const orders = createOrderStore(db);
  for (let i = 0; i < count; i++) {
    await orders.create(
      { partnerId, shopId: null },
      { shop_id: shops[i % shops.length]!, items: [{ sku: "latte", quantity: 1 + (i % 3) }] },
    );
  }
};
