/**
 * The composition root: config → logger → store → broker → bridge → http,
 * and their start and stop. Nothing else wires components together. Each
 * part is wired by one small function: the broker, the HTTP server, retention
 * and the shutdown phases in src/app/; the bridge here (`startDelivery`,
 * `watchDelivery`).
 *
 * Roles:
 * - `all` (brewcast start): API, embedded broker and bridge in one process;
 *   with BREWCAST_MQTT_URL the bridge publishes there instead and no
 *   embedded broker runs.
 * - `broker` (brewcast broker): the broker alone (scale out several behind
 *   a TCP load balancer, sharing REDIS_URL).
 * - `bridge` (brewcast bridge): the bridge alone, publishing to BREWCAST_MQTT_URL.
 */
import { randomBytes } from "node:crypto";
import { startConfiguredBroker } from "./app/broker.ts";
import { startHttp } from "./app/http.ts";
import { scheduleRetention } from "./app/retention.ts";
import { createShutdown, type Shutdown } from "./app/shutdown.ts";
import { startWebhookDelivery, startWebhooks } from "./app/webhooks.ts";
import { Bridge } from "./bridge/bridge.ts";
import { createMqttPublisher } from "./bridge/mqtt-publisher.ts";
import type { Publisher } from "./bridge/ports.ts";
import { BRIDGE_USERNAME, type Broker } from "./broker/index.ts";
import type { Config } from "./config/schema.ts";
import type { OrderEvent } from "./domain/events.ts";
import { buildPartnerStatusTopic } from "./domain/topics.ts";
import type { WebhookEndpointStatusMessage } from "./domain/webhooks.ts";
import { checkPortsFree } from "./listen-error.ts";
import { type Logger, redactUrl } from "./log.ts";
import { checkFileDescriptorBudget } from "./ops/fd-budget.ts";
import { createMetrics, type Metrics } from "./ops/metrics.ts";
import { startPartnerMonitor } from "./ops/partner-monitor.ts";
import { type AccessFeed, createAccessFeed } from "./store/access-feed.ts";
import { createCredentialStore } from "./store/credentials.ts";
import type { Db } from "./store/db.ts";
import { createDeliveryLog } from "./store/delivery-log.ts";
import { readDeliveryStatus } from "./store/delivery-status.ts";
import { createDoorbell } from "./store/doorbell.ts";
import { createHistoryReader } from "./store/event-log.ts";
import { EventTextCache } from "./store/event-text-cache.ts";
import { createLeaderLock } from "./store/leader-lock.ts";
import { migrate } from "./store/migrate.ts";
import { openDb } from "./store/open-db.ts";
import { createOrderStore } from "./store/orders.ts";
import { createPartnerStore, type PartnerStore } from "./store/partners.ts";
import { readWebhookStatus } from "./store/webhook-status.ts";
import { createCommitWakeups } from "./stream/commit-wakeups.ts";
import type { WebhookDelivery } from "./webhooks/delivery.ts";

export type Role = "all" | "broker" | "bridge";

/** A running brewcast process: what it bound, and how to stop it. */
export interface RunningBrewcast {
  ports: { http: number; mqtt?: number; mqtts?: number };
  adminToken: string;
  stop(): Promise<void>;
}

/**
 * The parts of a running process that benchmarks and tests reach into (through
 * `internalsOf`), kept off the production type: nothing in the product uses them.
 */
export interface BrewcastInternals {
  db: Db;
  /** What the API does after each commit; for writers in this process that bypass HTTP (benchmarks). */
  committed(event: OrderEvent): void;
  broker: Broker | undefined;
  bridge: Bridge | undefined;
}

const internals = new WeakMap<RunningBrewcast, BrewcastInternals>();

/** The internals of a process started by `startBrewcast`, for benchmarks and tests. */
export const internalsOf = (running: RunningBrewcast): BrewcastInternals => {
  const found = internals.get(running);
  if (!found) throw new Error("not a process started by startBrewcast");
  return found;
};

/** Opens the database, naming the variable to fix when it cannot be reached or opened. */
const openConfiguredDb = async (config: Config, log: Logger): Promise<Db> => {
  try {
    return await openDb({ databaseUrl: config.DATABASE_URL, dataDir: config.BREWCAST_DATA_DIR, log });
  } catch (error) {
    const why = (error as Error).message || (error as NodeJS.ErrnoException).code || String(error);
    // Already one line naming its variable (the data directory's lock): as it is.
    if (/^(DATABASE_URL|BREWCAST_DATA_DIR)=/.test(why)) throw error;
    throw config.DATABASE_URL
      ? new Error(`DATABASE_URL=${redactUrl(config.DATABASE_URL)}: cannot connect (${why})`, { cause: error })
      : new Error(
          `BREWCAST_DATA_DIR=${config.BREWCAST_DATA_DIR}: cannot open the embedded database (${why})`,
          {
            cause: error,
          },
        );
  }
};

export const openMigratedDb = async (config: Config, log: Logger): Promise<Db> => {
  const db = await openConfiguredDb(config, log);
  try {
    const applied = await migrate(db);
    if (applied.length > 0) log.info({ applied }, "migrations applied");
    else log.info({ applied }, "no migrations to apply: the database is up to date");
    return db;
  } catch (error) {
    await db.close();
    throw error;
  }
};

export interface DeliveryWiring {
  config: Config;
  log: Logger;
  db: Db;
  recentEvents: EventTextCache;
  broker: Broker | undefined;
  shutdown: Shutdown;
}

/** The bridge: the log → MQTT delivery, publishing to the embedded broker or BREWCAST_MQTT_URL. */
const startDelivery = async ({
  config,
  log,
  db,
  recentEvents,
  broker,
  shutdown,
}: DeliveryWiring): Promise<{ bridge: Bridge; publisher: Publisher }> => {
  const onStop = shutdown.onStop;
  let publisher: Publisher;
  if (config.BREWCAST_MQTT_URL) {
    const external = await createMqttPublisher({
      url: config.BREWCAST_MQTT_URL,
      // A brewcast broker cluster knows the bridge by its internal identity; other brokers by the URL.
      ...(config.BREWCAST_BRIDGE_SECRET
        ? { username: BRIDGE_USERNAME, password: config.BREWCAST_BRIDGE_SECRET }
        : {}),
      log: log.child({ component: "bridge" }),
    });
    onStop("broker", () => external.close());
    publisher = external;
  } else if (broker) {
    // The broker orders a partner's in-process publishes itself (aedes#994: see
    // src/broker/ordered-publish.ts), so the bridge may hand it a whole batch at once.
    const embedded = broker;
    publisher = { publish: (message) => embedded.publish(message) };
  } else {
    throw new Error("the bridge has no broker to publish to");
  }
  const started = new Bridge({
    log: log.child({ component: "bridge" }),
    source: await createDeliveryLog(db, recentEvents),
    publisher,
    lock: createLeaderLock(db),
    watermarkMs: config.BREWCAST_WATERMARK_MS,
  });
  onStop("bridge", () => started.stop());
  return { bridge: started, publisher };
};

/** What follows the bridge: its counters, the partner states it obeys, the ladder's monitor while it leads. */
const watchDelivery = (
  bridge: Bridge,
  deps: {
    log: Logger;
    db: Db;
    metrics: Metrics;
    accessFeed: AccessFeed;
    partners: PartnerStore;
    shutdown: Shutdown;
  },
): void => {
  const { metrics } = deps;
  bridge.on("published", ({ partnerId, count, pushed }) => {
    if (pushed) metrics.deliveries.inc({ partner: partnerId }, count);
  });
  bridge.on("partner-error", ({ partnerId }) => metrics.publishErrors.inc({ partner: partnerId }));
  // The ladder and the kill switch change what the bridge pushes, from any process.
  const unsubscribe = deps.accessFeed.subscribe((change) => {
    if (change.type === "partner_state_changed") bridge.setPartnerState(change.partnerId, change.state);
  });
  const monitor = startPartnerMonitor({
    log: deps.log.child({ component: "monitor" }),
    readStatus: () => readDeliveryStatus(deps.db),
    stepLadder: (partnerId, from, to, reason) => deps.partners.stepLadder(partnerId, from, to, reason),
    isLeader: () => bridge.role === "leader",
    onTransition: ({ partnerId, from, to }) => metrics.stateTransitions.inc({ partner: partnerId, from, to }),
  });
  deps.shutdown.onStop("bridge", async () => {
    monitor.stop();
    unsubscribe();
  });
};

/** The admin token: configured, or generated for this process (and said so). */
const adminTokenOf = (config: Config, log: Logger, role: Role): string => {
  const adminToken = config.BREWCAST_ADMIN_TOKEN ?? randomBytes(24).toString("base64url");
  if (!config.BREWCAST_ADMIN_TOKEN && role === "all") {
    log.warn(
      { admin_token: adminToken },
      "BREWCAST_ADMIN_TOKEN not set: generated an admin token for this process only",
    );
  }
  return adminToken;
};

/** Before the database, which may take seconds to open: a taken port or a wrong host fails at once. */
const checkOwnPortsFree = (config: Config, runsBroker: boolean): Promise<void> =>
  checkPortsFree(config.BREWCAST_HOST, [
    { variable: "BREWCAST_HTTP_PORT", port: config.BREWCAST_HTTP_PORT },
    ...(runsBroker ? [{ variable: "BREWCAST_MQTT_PORT", port: config.BREWCAST_MQTT_PORT }] : []),
    ...(runsBroker && config.BREWCAST_MQTTS_PORT !== undefined
      ? [{ variable: "BREWCAST_MQTTS_PORT", port: config.BREWCAST_MQTTS_PORT }]
      : []),
  ]);

export const startBrewcast = async (
  config: Config,
  log: Logger,
  role: Role = "all",
): Promise<RunningBrewcast> => {
  const adminToken = adminTokenOf(config, log, role);
  if (role === "bridge" && !config.BREWCAST_MQTT_URL) {
    throw new Error("BREWCAST_MQTT_URL: required by `brewcast bridge` (the broker it publishes to)");
  }
  const runsBroker = role === "broker" || (role === "all" && !config.BREWCAST_MQTT_URL);
  await checkOwnPortsFree(config, runsBroker);
  const db = await openMigratedDb(config, log);
  const shutdown = createShutdown(log);
  shutdown.onStop("database", () => db.close());

  try {
    const accessFeed = await createAccessFeed(db);
    shutdown.onStop("background", () => accessFeed.close());
    const credentials = createCredentialStore(db, { accessChanges: accessFeed });
    const partners = createPartnerStore(db, { accessFeed });
    // The log's recent events as the bytes every page and replay sends, kept by whoever here read
    // them: the delivery core, pages, replays (event-text-cache.ts). Not the order store: keeping
    // every write cost a fifth of order throughput (bench/README.md, issue 17).
    const recentEvents = new EventTextCache(config.BREWCAST_HISTORY_CACHE_MB * 1024 * 1024);
    const orders = createOrderStore(db);

    let broker: Broker | undefined;
    if (runsBroker) {
      const started = await startConfiguredBroker({
        config,
        log,
        db,
        verifier: credentials,
        accessChanges: accessFeed,
        recentEvents,
      });
      broker = started;
      shutdown.onStop("broker", () => started.close());
    }

    const delivery =
      role === "bridge" || role === "all"
        ? await startDelivery({ config, log, db, recentEvents, broker, shutdown })
        : undefined;
    const bridge = delivery?.bridge;
    const history = createHistoryReader(db, recentEvents);

    const metrics = createMetrics({
      readStatus: () => readDeliveryStatus(db),
      ...(broker
        ? { connectedClients: () => broker.stats().connected, brokerCounters: () => broker.stats() }
        : {}),
      ...(bridge ? { bridgeLeader: () => bridge.role === "leader" } : {}),
      readWebhookStatus: () => readWebhookStatus(db),
      ...(role === "all" ? { historyReads: () => history.stats() } : {}),
    });
    if (bridge) watchDelivery(bridge, { log, db, metrics, accessFeed, partners, shutdown });

    const webhooks = startWebhooks({ config, log, db, shutdown });
    // Webhooks are delivered where a bridge runs (one process leads, on a lock of its own); an
    // endpoint's status change is announced, not retained, on the partner's MQTT status topic.
    let webhookDelivery: WebhookDelivery | undefined;
    if (delivery) {
      const { publisher } = delivery;
      webhookDelivery = await startWebhookDelivery(webhooks, {
        config,
        log,
        db,
        metrics,
        shutdown,
        announce: ({ partnerId, endpointId, status, reason, since }) =>
          publisher.publish({
            topic: buildPartnerStatusTopic(partnerId),
            payload: JSON.stringify({
              type: "webhook_endpoint",
              endpoint_id: endpointId,
              status,
              reason,
              since,
            } satisfies WebhookEndpointStatusMessage),
            qos: 1,
            retain: false,
          }),
      });
    }

    const doorbell = createDoorbell(db, (error) => log.warn({ err: error }, "doorbell ring failed"));
    // Open event streams (GET /v1/events/stream) wake on this process's commits and on what its
    // leading bridge publishes (other processes' commits).
    const streamWakeups = createCommitWakeups();
    bridge?.on("published", ({ partnerId }) => streamWakeups.committed(partnerId));
    const committed = (event: OrderEvent): void => {
      streamWakeups.committed(event.partner_id);
      // Our own leading bridge is handed the event in-process; only a bridge leading in another
      // process (a separate `brewcast bridge`, a standby that took over) needs the doorbell.
      const bridgeLeads = bridge?.role === "leader";
      const webhooksLead = webhookDelivery?.role === "leader";
      if (bridgeLeads) bridge.committed(event);
      if (webhooksLead) webhookDelivery?.committed(event);
      if (!bridgeLeads || !webhooksLead) doorbell.ring(event);
    };
    checkFileDescriptorBudget(config, role, log);
    const http = await startHttp({
      config,
      log,
      db,
      adminToken,
      stores: { verifier: credentials, orders, partners, credentials },
      history,
      broker,
      bridgeRole: bridge ? () => bridge.role : undefined,
      metrics,
      committed,
      channels: {
        eventStream: {
          subscribeCommits: streamWakeups.subscribe,
          subscribeAccess: (handler) => accessFeed.subscribe(handler),
          heartbeatMs: config.BREWCAST_WATERMARK_MS,
          drainTimeoutMs: config.BREWCAST_DRAIN_TIMEOUT_MS,
          maxStreamsPerPartner: config.BREWCAST_SSE_MAX_STREAMS_PER_PARTNER,
          onEnded: (reason, error) => log.info({ reason, err: error }, "event stream ended early"),
        },
        webhooks: webhooks.routes,
      },
      // A broker or bridge process serves health (and the broker MQTT over WebSocket) only.
      serveApi: role === "all",
      shutdown,
    });
    shutdown.onStop("doorbell", () => doorbell.flush());

    await bridge?.start();

    if (config.BREWCAST_RETENTION_DAYS !== undefined && role === "all") {
      scheduleRetention(db, config.BREWCAST_RETENTION_DAYS, log, shutdown);
    }

    const ports = { http, ...(broker ? broker.ports : {}) };
    log.info({ ...ports, host: config.BREWCAST_HOST, role, database: db.kind }, "listening");
    const running: RunningBrewcast = { ports, adminToken, stop: shutdown.stopAll };
    internals.set(running, { db, committed, broker, bridge });
    return running;
  } catch (error) {
    await shutdown.stopAll();
    throw error;
  }
};
