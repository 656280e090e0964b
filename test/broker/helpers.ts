/**
 * Broker test harness: a fresh database with seeded partners, the real
 * credential store and access feed, a broker on port 0. Its clients:
 * test/support/mqtt.ts (mqtt.js) and test/support/mosquitto.ts (mosquitto_sub/_pub).
 */
import { type Broker, type BrokerOptions, startBroker } from "../../src/broker/index.ts";
import { createAccessFeed } from "../../src/store/access-feed.ts";
import { type CredentialStore, createCredentialStore } from "../../src/store/credentials.ts";
import { createSessionLog, createSessionStore } from "../../src/store/mqtt-sessions.ts";
import { createPartnerStore, type PartnerStore } from "../../src/store/partners.ts";
import { type SeededPartner, seedPartner } from "../support/fixtures.ts";
import { createTestDb, silentLog, type TestDb } from "../support/test-db.ts";

export interface Harness {
  testDb: TestDb;
  broker: Broker;
  /** Another broker on the same database and access feed, with other options (closed with the harness). */
  extraBroker(overrides: Partial<BrokerOptions>): Promise<{ broker: Broker; url: string }>;
  credentials: CredentialStore;
  partners: PartnerStore;
  url: string;
  seed(shops?: number): Promise<SeededPartner>;
  close(): Promise<void>;
}

/** Listeners and limits of every test broker: port 0, the product's defaults where a test does not say otherwise. */
export const TEST_BROKER_LIMITS = {
  host: "127.0.0.1",
  mqttPort: 0,
  maxPacketBytes: 65_536,
  maxConnectionsPerPartner: 1000,
  drainTimeoutMs: 10_000,
  sessionTtlSeconds: 3600,
  log: silentLog,
} satisfies Partial<BrokerOptions>;

export const startHarness = async (overrides: Partial<BrokerOptions> = {}): Promise<Harness> => {
  const testDb = await createTestDb();
  const accessChanges = await createAccessFeed(testDb.db);
  const credentials = createCredentialStore(testDb.db, { accessChanges });
  const partners = createPartnerStore(testDb.db);
  const options: BrokerOptions = {
    ...TEST_BROKER_LIMITS,
    verifier: credentials,
    accessChanges,
    sessions: { store: createSessionStore(testDb.db), log: createSessionLog(testDb.db) },
    loginFailureLimit: 1000,
    ...overrides,
  };
  const broker = await startBroker(options);
  const extras: Broker[] = [];
  return {
    testDb,
    broker,
    credentials,
    partners,
    url: `mqtt://127.0.0.1:${broker.ports.mqtt}`,
    seed: (shops = 2) => seedPartner(testDb.db, { shops }),
    async extraBroker(more) {
      const extra = await startBroker({ ...options, ...more });
      extras.push(extra);
      return { broker: extra, url: `mqtt://127.0.0.1:${extra.ports.mqtt}` };
    },
    async close() {
      for (const extra of extras) await extra.close();
      await broker.close();
      await accessChanges.close();
      await testDb.cleanup();
    },
  };
};
