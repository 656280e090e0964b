/**
 * The HTTP server: the API (or health only, for a broker or bridge process),
 * metrics, readiness, MQTT over WebSocket when a broker runs here; listening,
 * and closing in the `http` phase.
 */
import type { AddressInfo } from "node:net";
import { buildHttpApp, type HttpAppDeps, type ReadinessReport } from "../api/app.ts";
import type { Broker } from "../broker/index.ts";
import type { Config } from "../config/schema.ts";
import type { OrderEvent } from "../domain/events.ts";
import { listenError } from "../listen-error.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../ops/metrics.ts";
import pages from "../pages/pages.ts";
import type { Db } from "../store/db.ts";
import { readDeliveryStatus } from "../store/delivery-status.ts";
import { type HistoryReader, readEvents } from "../store/event-log.ts";
import type { Shutdown } from "./shutdown.ts";

export interface HttpWiring {
  config: Config;
  log: Logger;
  db: Db;
  adminToken: string;
  stores: Pick<HttpAppDeps, "verifier" | "orders" | "partners" | "credentials">;
  /** GET /v1/events' pages, served from memory where it can (event-log.ts). */
  history: HistoryReader;
  broker: Broker | undefined;
  /** The bridge's role here, when one runs here: `leader` or `standby` are ready. */
  bridgeRole: (() => string) | undefined;
  metrics: Metrics;
  committed(event: OrderEvent): void;
  /** The API's other channels: the event stream (SSE) and webhook endpoints. */
  channels: Pick<HttpAppDeps, "eventStream" | "webhooks">;
  /** False for a broker-only or bridge-only process: health endpoints only. */
  serveApi: boolean;
  shutdown: Shutdown;
}

/** Ready: the database answers, and a bridge here leads or stands by. */
const readinessOf = (db: Db, wiring: HttpWiring) => async (): Promise<ReadinessReport> => {
  const checks: Record<string, string> = {};
  let ready = true;
  try {
    await db.query("SELECT 1");
    checks.database = "ok";
  } catch (error) {
    checks.database = (error as Error).message;
    ready = false;
  }
  if (wiring.broker) checks.broker = "ok";
  if (wiring.bridgeRole) {
    const role = wiring.bridgeRole();
    checks.bridge = role;
    if (role !== "leader" && role !== "standby") ready = false;
  }
  return { ready, checks };
};

/** Builds the app, listens, and registers its close; resolves to the bound port. */
export const startHttp = async (wiring: HttpWiring): Promise<number> => {
  const { config, db, broker, metrics } = wiring;
  const app = await buildHttpApp({
    log: wiring.log,
    adminToken: wiring.adminToken,
    ...wiring.stores,
    readEvents: (input) => readEvents(db, input),
    readEventsText: (input) => wiring.history.read(input),
    rateLimit: { max: config.BREWCAST_RATE_LIMIT_REQUESTS, windowMs: config.BREWCAST_RATE_LIMIT_WINDOW_MS },
    maxPendingHistoryReads: config.BREWCAST_HISTORY_MAX_PENDING,
    historyMaxWaitMs: config.BREWCAST_HISTORY_MAX_WAIT_MS,
    readiness: readinessOf(db, wiring),
    onCommitted: wiring.committed,
    ...wiring.channels,
    deliveryStatus: async (partnerId) => (await readDeliveryStatus(db, partnerId))[0],
    statusStream: { readAllStatus: () => readDeliveryStatus(db) },
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
    serveApi: wiring.serveApi,
  });
  // The console and the kiosk page: static files and routes only, nothing runs until one is asked for.
  if (wiring.serveApi && config.BREWCAST_CONSOLE === "on")
    await app.register(pages, { watermarkMs: config.BREWCAST_WATERMARK_MS });
  broker?.attachWebSocket(app.server);
  // The HTTP server's own cap, plus the MQTT-over-WebSocket clients it carries (capped by the broker).
  app.server.maxConnections =
    config.BREWCAST_HTTP_MAX_CONNECTIONS + (broker ? config.BREWCAST_MAX_CONNECTIONS : 0);
  // A reconnect storm opens thousands of connections at once. Past Node's default accept queue
  // (511) the kernel drops SYNs, which clients resend after 1, 3, 7, … s: a minute's tail for
  // some. The kernel caps this at net.core.somaxconn.
  const backlog = 4_096;
  await app
    .listen({ host: config.BREWCAST_HOST, port: config.BREWCAST_HTTP_PORT, backlog })
    .catch((error) => {
      throw listenError("BREWCAST_HTTP_PORT", config.BREWCAST_HOST, config.BREWCAST_HTTP_PORT, error);
    });
  wiring.shutdown.onStop("http", async () => {
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
  return (app.server.address() as AddressInfo).port;
};
