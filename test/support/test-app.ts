/**
 * The HTTP app on a fresh test database, wired as src/main.ts wires it,
 * for `inject()` tests (no socket) or `listen({ port: 0 })` tests.
 */

import { buildHttpApp, type HttpApp } from "../../src/api/app.ts";
import type { OrderEvent } from "../../src/domain/events.ts";
import type { WebhookStore } from "../../src/domain/webhooks.ts";
import { createAccessFeed } from "../../src/store/access-feed.ts";
import { createCredentialStore } from "../../src/store/credentials.ts";
import { readDeliveryStatus } from "../../src/store/delivery-status.ts";
import { createHistoryReader, readEvents } from "../../src/store/event-log.ts";
import { EventTextCache } from "../../src/store/event-text-cache.ts";
import { createOrderStore } from "../../src/store/orders.ts";
import { createPartnerStore } from "../../src/store/partners.ts";
import { createWebhookStore } from "../../src/store/webhooks.ts";
import { createCommitWakeups } from "../../src/stream/commit-wakeups.ts";
import { createAddressGuard, parseAllowNets } from "../../src/webhooks/address-guard.ts";
import { createWebhookSender } from "../../src/webhooks/sender.ts";
import { createWebhookVerifier, type WebhookVerifier } from "../../src/webhooks/verification.ts";
import { type AdapterKind, createTestDb, DEFAULT_ADAPTER, silentLog, type TestDb } from "./test-db.ts";

export const TEST_ADMIN_TOKEN = "test-admin-token-0123456789";

export interface TestApp extends TestDb {
  app: HttpApp;
  /** Events handed to `onCommitted`, in call order. */
  committed: OrderEvent[];
  webhooks: { store: WebhookStore; verifier: WebhookVerifier };
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** BREWCAST_WEBHOOK_ALLOW_NETS of this app (default: none, the production guard). */
  webhookAllowNets?: string;
  /** BREWCAST_WEBHOOK_SECRET_OVERLAP_SECONDS (default 86400). */
  webhookSecretOverlapSeconds?: number;
  /** Requests per credential and window on /v1 (default: unlimited). */
  rateLimit?: { max: number; windowMs: number };
  /** GET /v1/events reads in progress at once (default: no bound). */
  maxPendingHistoryReads?: number;
}

export const createTestApp = async (
  kind: AdapterKind = DEFAULT_ADAPTER,
  options: TestAppOptions = {},
): Promise<TestApp> => {
  const testDb = await createTestDb(kind);
  const { db } = testDb;
  const accessFeed = await createAccessFeed(db);
  const credentials = createCredentialStore(db, { accessChanges: accessFeed });
  const committed: OrderEvent[] = [];
  // As in production: pages served from the events already read where they can.
  const history = createHistoryReader(db, new EventTextCache(16 * 1024 * 1024));
  const streamWakeups = createCommitWakeups();
  const guard = createAddressGuard({ allowNets: parseAllowNets(options.webhookAllowNets) });
  const sender = createWebhookSender({ guard, timeoutMs: 5_000 });
  const webhookStore = createWebhookStore(db);
  const verifier = createWebhookVerifier({ store: webhookStore, sender, log: silentLog });
  const app = await buildHttpApp({
    log: silentLog,
    adminToken: TEST_ADMIN_TOKEN,
    verifier: credentials,
    orders: createOrderStore(db),
    partners: createPartnerStore(db, { accessFeed }),
    credentials,
    readEvents: (input) => readEvents(db, input),
    readEventsText: (input) => history.read(input),
    ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
    ...(options.maxPendingHistoryReads ? { maxPendingHistoryReads: options.maxPendingHistoryReads } : {}),
    deliveryStatus: async (partnerId) => (await readDeliveryStatus(db, partnerId))[0],
    readiness: async () => ({ ready: true, checks: { database: "ok" } }),
    onCommitted: (event) => {
      committed.push(event);
      streamWakeups.committed(event.partner_id);
    },
    eventStream: {
      subscribeCommits: streamWakeups.subscribe,
      subscribeAccess: accessFeed.subscribe,
      heartbeatMs: 5_000,
      drainTimeoutMs: 10_000,
      maxStreamsPerPartner: 100,
    },
    webhooks: {
      store: webhookStore,
      verifier,
      guard,
      secretOverlapSeconds: options.webhookSecretOverlapSeconds ?? 86_400,
    },
  });
  await app.ready();
  return {
    ...testDb,
    app,
    committed,
    webhooks: { store: webhookStore, verifier },
    async close() {
      await app.close();
      await verifier.settle();
      await sender.close();
      await accessFeed.close();
      await testDb.cleanup();
    },
  };
};

export const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });
export const admin = () => bearer(TEST_ADMIN_TOKEN);
