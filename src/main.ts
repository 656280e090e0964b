/**
 * The composition root: config → logger → store → broker → bridge → http,
 * and their start and stop. Nothing else wires components together.
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
import type { AddressInfo } from "node:net";
import { buildHttpApp, type ReadinessReport } from "./api/app.ts";
import { Bridge } from "./bridge/bridge.ts";
import { createMqttPublisher } from "./bridge/mqtt-publisher.ts";
import type { Publisher } from "./bridge/ports.ts";
import { BRIDGE_USERNAME, type Broker, startBroker } from "./broker/index.ts";
import type { Config } from "./config/schema.ts";
import type { OrderEvent } from "./domain/events.ts";
import { checkPortsFree, listenError } from "./listen-error.ts";
import { type Logger, redactUrl } from "./log.ts";
import { checkFileDescriptorBudget } from "./ops/fd-budget.ts";
import { createMetrics } from "./ops/metrics.ts";
import { startPartnerMonitor } from "./ops/partner-monitor.ts";
import { createAccessFeed } from "./store/access-feed.ts";
import { createBridgeLog, createDoorbell, createLeaderLock } from "./store/bridge-log.ts";
import { createCredentialStore } from "./store/credentials.ts";
import type { Db } from "./store/db.ts";
import { readDeliveryStatus } from "./store/delivery-status.ts";
import { readEvents } from "./store/event-log.ts";
import { migrate } from "./store/migrate.ts";
import { createSessionLog, createSessionStore } from "./store/mqtt-sessions.ts";
import { openDb } from "./store/open-db.ts";
import { createOrderStore } from "./store/orders.ts";
import { createPartnerStore } from "./store/partners.ts";
import { pruneHistory } from "./store/retention.ts";

export type Role = "all" | "broker" | "bridge";

export interface RunningBrewcast {
  ports: { http: number; mqtt?: number; mqtts?: number };
  adminToken: string;
  db: Db;
  /** What the API does after each commit; for writers in this process that bypass HTTP (benchmarks). */
  committed(event: OrderEvent): void;
  broker: Broker | undefined;
  bridge: Bridge | undefined;
  stop(): Promise<void>;
}

const RETENTION_INTERVAL_MS = 3_600_000;

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

export const startBrewcast = async (
  config: Config,
  log: Logger,
  role: Role = "all",
): Promise<RunningBrewcast> => {
  const adminToken = config.BREWCAST_ADMIN_TOKEN ?? randomBytes(24).toString("base64url");
  if (!config.BREWCAST_ADMIN_TOKEN && role === "all") {
    log.warn(
      { admin_token: adminToken },
      "BREWCAST_ADMIN_TOKEN not set: generated an admin token for this process only",
    );
  }
  if (role === "bridge" && !config.BREWCAST_MQTT_URL) {
    throw new Error("BREWCAST_MQTT_URL: required by `brewcast bridge` (the broker it publishes to)");
  }
  const runsBroker = role === "broker" || (role === "all" && !config.BREWCAST_MQTT_URL);
  // Before the database, which may take seconds to open: a taken port or a wrong host fails at once.
  await checkPortsFree(config.BREWCAST_HOST, [
    { variable: "BREWCAST_HTTP_PORT", port: config.BREWCAST_HTTP_PORT },
    ...(runsBroker ? [{ variable: "BREWCAST_MQTT_PORT", port: config.BREWCAST_MQTT_PORT }] : []),
    ...(runsBroker && config.BREWCAST_MQTTS_PORT !== undefined
      ? [{ variable: "BREWCAST_MQTTS_PORT", port: config.BREWCAST_MQTTS_PORT }]
      : []),
  ]);
  const db = await openMigratedDb(config, log);
  // Shutdown order, whatever the start order: the bridge finishes its in-flight publishes and
  // commits its cursors while the broker is still up; the broker then closes every MQTT client
  // (WebSocket ones hold the HTTP server open); HTTP stops accepting and finishes its requests;
  // their doorbell rings go out; the database closes last.
  const PHASE = { bridge: 1, broker: 2, http: 3, doorbell: 4, background: 5, database: 9 } as const;
  type Phase = keyof typeof PHASE;
  const stops: { phase: Phase; stop: () => Promise<void> }[] = [];
  const onStop = (phase: Phase, stop: () => Promise<void>) => stops.push({ phase, stop });
  onStop("database", () => db.close());
  const stopAll = async () => {
    const ordered = stops.splice(0).sort((a, b) => PHASE[a.phase] - PHASE[b.phase]);
    for (const { phase, stop } of ordered) {
      const started = Date.now();
      await stop().catch((error) => log.error({ err: error, phase }, "stop failed"));
      log.debug({ phase, ms: Date.now() - started }, "stopped");
    }
  };

  try {
    const accessFeed = await createAccessFeed(db);
    onStop("background", () => accessFeed.close());
    const credentials = createCredentialStore(db, { accessChanges: accessFeed });
    const partners = createPartnerStore(db, { accessFeed });
    const orders = createOrderStore(db);

    let broker: Broker | undefined;
    if (runsBroker) {
      broker = await startBroker({
        host: config.BREWCAST_HOST,
        mqttPort: config.BREWCAST_MQTT_PORT,
        ...(config.BREWCAST_MQTTS_PORT !== undefined ? { mqttsPort: config.BREWCAST_MQTTS_PORT } : {}),
        ...(config.BREWCAST_TLS_CERT && config.BREWCAST_TLS_KEY
          ? {
              tls: {
                cert: config.BREWCAST_TLS_CERT,
                key: config.BREWCAST_TLS_KEY,
                ...(config.BREWCAST_TLS_CA ? { ca: config.BREWCAST_TLS_CA } : {}),
              },
            }
          : {}),
        maxPacketBytes: config.BREWCAST_MAX_PACKET_BYTES,
        maxConnectionsPerPartner: config.BREWCAST_MAX_CONNECTIONS_PER_PARTNER,
        maxConnections: config.BREWCAST_MAX_CONNECTIONS,
        maxPendingPerAddress: config.BREWCAST_MAX_PENDING_PER_ADDRESS,
        connectTimeoutMs: config.BREWCAST_CONNECT_TIMEOUT_MS,
        loginFailureLimit: config.BREWCAST_LOGIN_FAILURE_LIMIT,
        loginFailureWindowMs: config.BREWCAST_LOGIN_FAILURE_WINDOW_MS,
        drainTimeoutMs: config.BREWCAST_DRAIN_TIMEOUT_MS,
        sessions: { store: createSessionStore(db), log: createSessionLog(db) },
        sessionFlushMs: config.BREWCAST_SESSION_FLUSH_MS,
        sessionTtlSeconds: config.BREWCAST_SESSION_TTL,
        ...(config.REDIS_URL ? { redisUrl: config.REDIS_URL } : {}),
        log: log.child({ component: "broker" }),
        verifier: credentials,
        accessChanges: accessFeed,
        ...(config.BREWCAST_BRIDGE_SECRET ? { bridgeSecret: config.BREWCAST_BRIDGE_SECRET } : {}),
      });
      const started = broker;
      onStop("broker", () => started.close());
    }

    let bridge: Bridge | undefined;
    if (role === "bridge" || role === "all") {
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
        source: await createBridgeLog(db),
        publisher,
        lock: createLeaderLock(db),
        watermarkMs: config.BREWCAST_WATERMARK_MS,
      });
      bridge = started;
      onStop("bridge", () => started.stop());
    }

    const readiness = async (): Promise<ReadinessReport> => {
      const checks: Record<string, string> = {};
      let ready = true;
      try {
        await db.query("SELECT 1");
        checks.database = "ok";
      } catch (error) {
        checks.database = (error as Error).message;
        ready = false;
      }
      if (broker) checks.broker = "ok";
      if (bridge) {
        checks.bridge = bridge.role;
        if (bridge.role !== "leader" && bridge.role !== "standby") ready = false;
      }
      return { ready, checks };
    };

    const metrics = createMetrics({
      readStatus: () => readDeliveryStatus(db),
      ...(broker
        ? {
            connectedClients: () => broker!.stats().connected,
            brokerCounters: () => broker!.stats(),
          }
        : {}),
      ...(bridge ? { bridgeLeader: () => bridge!.role === "leader" } : {}),
    });
    if (bridge) {
      const counted = bridge;
      counted.on("published", ({ partnerId, count, pushed }) => {
        if (pushed) metrics.deliveries.inc({ partner: partnerId }, count);
      });
      counted.on("partner-error", ({ partnerId }) => metrics.publishErrors.inc({ partner: partnerId }));
      // The ladder and the kill switch change what the bridge pushes, from any process.
      const unsubscribe = accessFeed.subscribe((change) => {
        if (change.type === "partner_state_changed") counted.setPartnerState(change.partnerId, change.state);
      });
      const monitor = startPartnerMonitor({
        log: log.child({ component: "monitor" }),
        readStatus: () => readDeliveryStatus(db),
        stepLadder: (partnerId, from, to, reason) => partners.stepLadder(partnerId, from, to, reason),
        isLeader: () => counted.role === "leader",
        onTransition: ({ partnerId, from, to }) =>
          metrics.stateTransitions.inc({ partner: partnerId, from, to }),
      });
      onStop("bridge", async () => {
        monitor.stop();
        unsubscribe();
      });
    }

    const doorbell = createDoorbell(db, (error) => log.warn({ err: error }, "doorbell ring failed"));
    const committed = (event: OrderEvent): void => {
      // Our own leading bridge is handed the event in-process; only a bridge leading in another
      // process (a separate `brewcast bridge`, a standby that took over) needs the doorbell.
      if (bridge?.role === "leader") bridge.committed(event);
      else doorbell.ring(event);
    };
    const app = await buildHttpApp({
      log,
      adminToken,
      verifier: credentials,
      orders,
      partners,
      credentials,
      readEvents: (input) => readEvents(db, input),
      readiness,
      onCommitted: committed,
      deliveryStatus: async (partnerId) => (await readDeliveryStatus(db, partnerId))[0],
      connectedClients: (partnerId) => {
        if (!broker) return null;
        const clients = broker.stats().connected[partnerId];
        return { backend: clients?.backend ?? 0, device: clients?.device ?? 0 };
      },
      metrics,
      ...(config.BREWCAST_METRICS_TOKEN ? { metricsToken: config.BREWCAST_METRICS_TOKEN } : {}),
      timeouts: {
        headersMs: config.BREWCAST_HTTP_HEADERS_TIMEOUT_MS,
        requestMs: config.BREWCAST_HTTP_REQUEST_TIMEOUT_MS,
      },
      onRequestCompleted: ({ route, method, status, partner }) => {
        metrics.httpRequests.inc({ route, method, status, partner: partner ?? "" });
        if (status === 401) metrics.httpAuthFailures();
      },
      // A broker or bridge process serves health (and the broker MQTT over WebSocket) only.
      serveApi: role === "all",
    });
    broker?.attachWebSocket(app.server);
    // The HTTP server's own cap, plus the MQTT-over-WebSocket clients it carries (capped by the broker).
    app.server.maxConnections =
      config.BREWCAST_HTTP_MAX_CONNECTIONS + (broker ? config.BREWCAST_MAX_CONNECTIONS : 0);
    checkFileDescriptorBudget(config, role, log);
    await app.listen({ host: config.BREWCAST_HOST, port: config.BREWCAST_HTTP_PORT }).catch((error) => {
      throw listenError("BREWCAST_HTTP_PORT", config.BREWCAST_HOST, config.BREWCAST_HTTP_PORT, error);
    });
    onStop("http", async () => {
      const closing = app.close();
      // A keep-alive connection busy when closing began turns idle once its request is answered;
      // close those as they turn idle, and cut whatever is left after 5 s.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      const cut = setTimeout(() => app.server.closeAllConnections(), 5_000);
      try {
        await closing;
      } finally {
        clearInterval(sweep);
        clearTimeout(cut);
      }
    });
    onStop("doorbell", () => doorbell.flush());
    const http = (app.server.address() as AddressInfo).port;

    await bridge?.start();

    if (config.BREWCAST_RETENTION_DAYS !== undefined && role === "all") {
      const days = config.BREWCAST_RETENTION_DAYS;
      const prune = () =>
        pruneHistory(db, days)
          .then((result) => log.info({ ...result, retentionDays: days }, "history pruned"))
          .catch((error) => log.error({ err: error }, "history pruning failed"));
      void prune();
      const timer = setInterval(prune, RETENTION_INTERVAL_MS);
      timer.unref();
      onStop("background", async () => clearInterval(timer));
    }

    const ports = { http, ...(broker ? broker.ports : {}) };
    log.info({ ...ports, host: config.BREWCAST_HOST, role, database: db.kind }, "listening");
    return { ports, adminToken, db, broker, bridge, committed, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
};
