/**
 * The HTTP app on a fresh test database, wired as src/main.ts wires it,
 * for `inject()` tests (no socket) or `listen({ port: 0 })` tests.
 */
import { buildHttpApp, type HttpApp } from "../../src/api/app.ts";
import type { OrderEvent } from "../../src/domain/events.ts";
import { createAccessFeed } from "../../src/store/access-feed.ts";
import { createCredentialStore } from "../../src/store/credentials.ts";
import { readDeliveryStatus } from "../../src/store/delivery-status.ts";
import { readEvents } from "../../src/store/event-log.ts";
import { createOrderStore } from "../../src/store/orders.ts";
import { createPartnerStore } from "../../src/store/partners.ts";
import { type AdapterKind, createTestDb, DEFAULT_ADAPTER, silentLog, type TestDb } from "./test-db.ts";

export const TEST_ADMIN_TOKEN = "test-admin-token-0123456789";

export interface TestApp extends TestDb {
  app: HttpApp;
  /** Events handed to `onCommitted`, in call order. */
  committed: OrderEvent[];
  close(): Promise<void>;
}

export const createTestApp = async (kind: AdapterKind = DEFAULT_ADAPTER): Promise<TestApp> => {
  const testDb = await createTestDb(kind);
  const { db } = testDb;
  const accessFeed = await createAccessFeed(db);
  const credentials = createCredentialStore(db, { accessChanges: accessFeed });
  const committed: OrderEvent[] = [];
  const app = await buildHttpApp({
    log: silentLog,
    adminToken: TEST_ADMIN_TOKEN,
    verifier: credentials,
    orders: createOrderStore(db),
    partners: createPartnerStore(db, { accessFeed }),
    credentials,
    readEvents: (input) => readEvents(db, input),
    deliveryStatus: async (partnerId) => (await readDeliveryStatus(db, partnerId))[0],
    readiness: async () => ({ ready: true, checks: { database: "ok" } }),
    onCommitted: (event) => committed.push(event),
  });
  await app.ready();
  return {
    ...testDb,
    app,
    committed,
    async close() {
      await app.close();
      await accessFeed.close();
      await testDb.cleanup();
    },
  };
};

export const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });
export const admin = () => bearer(TEST_ADMIN_TOKEN);
