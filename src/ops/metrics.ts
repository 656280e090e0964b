/**
 * Prometheus metrics. Every name starts with `brewcast_`; per-partner series
 * carry a `partner` label. Gauges that mirror state (heads, lag, clients,
 * states) are read at scrape time, so the hot paths pay nothing for them;
 * counters are bumped by the components' events.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { DeliveryStatus } from "../domain/ladder.ts";
import { PARTNER_STATES } from "../domain/partners.ts";
import { WEBHOOK_STATUSES, type WebhookStatus } from "../domain/webhooks.ts";

/** One webhook endpoint as /metrics shows it. */
export interface WebhookEndpointMetrics {
  partnerId: string;
  endpointId: string;
  status: WebhookStatus;
  lagEvents: number;
}

export interface MetricsSources {
  /** Per-partner delivery status from the database (any process can read it). */
  readStatus?(): Promise<DeliveryStatus[]>;
  /** Connected MQTT clients by partner and credential kind (a process with a broker). */
  connectedClients?(): Record<string, Record<string, number>>;
  /** Broker-wide counters, read at scrape time. */
  brokerCounters?(): BrokerCounters;
  /** 1 when this process's bridge leads, 0 when it stands by; absent without a bridge. */
  bridgeLeader?(): boolean;
  /** Every webhook endpoint's status and lag, from the database (any process). */
  readWebhookStatus?(): Promise<WebhookEndpointMetrics[]>;
  /** GET /v1/events' memory of events read, and where the events it served came from (a process serving the API). */
  historyReads?(): HistoryReadStats;
}

export interface HistoryReadStats {
  keptEvents: number;
  keptBytes: number;
  /** Events served in pages since the start, by where they came from. */
  served: Readonly<Record<"memory" | "database", number>>;
}

/** What the broker counts (monotonic, since it started) and a gauge or two, read at scrape time. */
export interface BrokerCounters {
  authFailures: number;
  throttledConnects: number;
  connectionsRefused: Readonly<Record<"listener_full" | "address_pending", number>>;
  restoredSubscriptionsDropped: number;
  oversizeClosed: number;
  malformedClosed: number;
  pendingLogins: number;
  sessions: {
    expired: number;
    ended: Readonly<Record<"past_retention" | "log_reset", number>>;
    replayed: number;
    heldDropped: number;
    connected: number;
  };
}

export interface Metrics {
  readonly registry: Registry;
  deliveries: Counter<"partner">;
  publishErrors: Counter<"partner">;
  httpRequests: Counter<"route" | "method" | "status" | "partner">;
  httpAuthFailures(): void;
  stateTransitions: Counter<"partner" | "from" | "to">;
  /** Webhook delivery attempts by outcome (delivered, failed, refused, gone) and events filtered out. */
  webhookDeliveries: Counter<"partner" | "outcome">;
  render(): Promise<string>;
  contentType: string;
}

export const createMetrics = (sources: MetricsSources): Metrics => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "brewcast_" });

  // One status read per scrape, shared by every gauge that needs it.
  let statusRead: Promise<DeliveryStatus[]> | undefined;
  const status = (): Promise<DeliveryStatus[]> => {
    statusRead ??= (sources.readStatus?.() ?? Promise.resolve([])).finally(() => {
      setImmediate(() => {
        statusRead = undefined;
      });
    });
    return statusRead;
  };

  const perPartner = (name: string, help: string, pick: (s: DeliveryStatus) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["partner"],
      registers: [registry],
      async collect() {
        this.reset();
        for (const s of await status()) this.set({ partner: s.partnerId }, pick(s));
      },
    });

  if (sources.readStatus) {
    perPartner("brewcast_partner_head_seq", "Latest committed seq of the partner.", (s) => s.headSeq);
    perPartner(
      "brewcast_partner_published_seq",
      "Last seq the bridge published (the broker accepted).",
      (s) => s.publishedSeq,
    );
    perPartner(
      "brewcast_partner_lag_events",
      "Committed events not yet accepted by the broker.",
      (s) => s.lagEvents,
    );
    perPartner(
      "brewcast_partner_lag_seconds",
      "Age of the oldest committed event not yet accepted by the broker.",
      (s) => s.lagSeconds,
    );
    new Gauge({
      name: "brewcast_partner_state",
      help: "1 for the partner's current state on the degradation ladder.",
      labelNames: ["partner", "state"],
      registers: [registry],
      async collect() {
        this.reset();
        for (const s of await status()) {
          for (const state of PARTNER_STATES)
            this.set({ partner: s.partnerId, state }, s.state === state ? 1 : 0);
        }
      },
    });
  }

  if (sources.readWebhookStatus) {
    const readWebhooks = sources.readWebhookStatus;
    let webhookRead: Promise<WebhookEndpointMetrics[]> | undefined;
    const webhooks = (): Promise<WebhookEndpointMetrics[]> => {
      webhookRead ??= readWebhooks().finally(() => {
        setImmediate(() => {
          webhookRead = undefined;
        });
      });
      return webhookRead;
    };
    new Gauge({
      name: "brewcast_webhook_endpoint_lag_events",
      help: "Events of the partner after the webhook endpoint's position (not yet delivered or passed over).",
      labelNames: ["partner", "endpoint"],
      registers: [registry],
      async collect() {
        this.reset();
        for (const e of await webhooks())
          this.set({ partner: e.partnerId, endpoint: e.endpointId }, e.lagEvents);
      },
    });
    new Gauge({
      name: "brewcast_webhook_endpoint_status",
      help: "1 for the webhook endpoint's current status (pending, active, throttled, disabled).",
      labelNames: ["partner", "endpoint", "status"],
      registers: [registry],
      async collect() {
        this.reset();
        for (const e of await webhooks()) {
          for (const status of WEBHOOK_STATUSES)
            this.set({ partner: e.partnerId, endpoint: e.endpointId, status }, e.status === status ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: "brewcast_webhook_endpoints",
      help: "Webhook endpoints by status.",
      labelNames: ["status"],
      registers: [registry],
      async collect() {
        this.reset();
        const all = await webhooks();
        for (const status of WEBHOOK_STATUSES)
          this.set({ status }, all.filter((e) => e.status === status).length);
      },
    });
  }

  if (sources.connectedClients) {
    const connected = sources.connectedClients;
    new Gauge({
      name: "brewcast_mqtt_connected_clients",
      help: "Connected MQTT clients by partner and credential kind.",
      labelNames: ["partner", "kind"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [partner, kinds] of Object.entries(connected())) {
          for (const [kind, count] of Object.entries(kinds)) this.set({ partner, kind }, count);
        }
      },
    });
  }

  let beforeRender = () => {};
  const authFailures = new Counter({
    name: "brewcast_auth_failures_total",
    help: "Refused logins, by transport.",
    labelNames: ["transport"],
    registers: [registry],
  });
  if (sources.brokerCounters) {
    const counters = sources.brokerCounters;
    // Each series mirrors a number the broker keeps: the counter moves by what it grew since the last scrape.
    const mirrors: {
      counter: Counter<string>;
      labels: Record<string, string>;
      read(c: BrokerCounters): number;
      seen: number;
    }[] = [];
    const mirror = (
      counter: Counter<string>,
      labels: Record<string, string>,
      read: (c: BrokerCounters) => number,
    ) => mirrors.push({ counter, labels, read, seen: 0 });
    const counter = (name: string, help: string, labelNames: string[] = []) =>
      new Counter({ name, help, labelNames, registers: [registry] });
    mirror(authFailures, { transport: "mqtt" }, (c) => c.authFailures);
    mirror(
      counter(
        "brewcast_mqtt_sessions_expired_total",
        "Persistent MQTT sessions removed after BREWCAST_SESSION_TTL unused.",
      ),
      {},
      (c) => c.sessions.expired,
    );
    const ended = counter(
      "brewcast_mqtt_sessions_ended_total",
      "Stored persistent sessions that could not be resumed (sessionPresent=0): their position is older than the retained history, or belongs to another log.",
      ["reason"],
    );
    mirror(ended, { reason: "past_retention" }, (c) => c.sessions.ended.past_retention);
    mirror(ended, { reason: "log_reset" }, (c) => c.sessions.ended.log_reset);
    mirror(
      counter(
        "brewcast_mqtt_session_replayed_events_total",
        "Events sent from the log to resumed persistent sessions.",
      ),
      {},
      (c) => c.sessions.replayed,
    );
    const refused = counter(
      "brewcast_mqtt_connections_refused_total",
      "MQTT connections closed before login: the listener full, the source address at its limit of connections not logged in, or its login throttled.",
      ["reason"],
    );
    mirror(refused, { reason: "listener_full" }, (c) => c.connectionsRefused.listener_full);
    mirror(refused, { reason: "address_pending" }, (c) => c.connectionsRefused.address_pending);
    mirror(refused, { reason: "login_throttled" }, (c) => c.throttledConnects);
    const closed = counter(
      "brewcast_mqtt_protocol_violations_total",
      "MQTT connections closed for a packet over the size limit, or a malformed one (ill-formed UTF-8 included).",
      ["reason"],
    );
    mirror(closed, { reason: "oversize" }, (c) => c.oversizeClosed);
    mirror(closed, { reason: "malformed" }, (c) => c.malformedClosed);
    mirror(
      counter(
        "brewcast_mqtt_subscriptions_dropped_total",
        "Stored subscriptions of a resumed session dropped because its credential may no longer hold them.",
      ),
      {},
      (c) => c.restoredSubscriptionsDropped,
    );
    new Gauge({
      name: "brewcast_mqtt_pending_logins",
      help: "MQTT connections accepted that have not logged in yet.",
      registers: [registry],
      collect() {
        this.set(counters().pendingLogins);
      },
    });
    new Gauge({
      name: "brewcast_mqtt_persistent_sessions_connected",
      help: "Persistent MQTT sessions (CleanSession=0) connected to this process.",
      registers: [registry],
      collect() {
        this.set(counters().sessions.connected);
      },
    });
    // Before each render, not in a collect(): a counter renders before a later metric's collect runs.
    beforeRender = () => {
      const now = counters();
      for (const m of mirrors) {
        const value = m.read(now);
        if (value > m.seen) m.counter.inc(m.labels, value - m.seen);
        m.seen = value;
      }
    };
  }

  if (sources.bridgeLeader) {
    const leader = sources.bridgeLeader;
    new Gauge({
      name: "brewcast_bridge_leader",
      help: "1 when this process's bridge holds the leader lock, 0 when it stands by.",
      registers: [registry],
      collect() {
        this.set(leader() ? 1 : 0);
      },
    });
  }

  if (sources.historyReads) {
    const reads = sources.historyReads;
    new Gauge({
      name: "brewcast_history_cache_bytes",
      help: "Memory held by events kept for GET /v1/events (an estimate; the bound is BREWCAST_HISTORY_CACHE_MB).",
      registers: [registry],
      collect() {
        this.set(reads().keptBytes);
      },
    });
    new Gauge({
      name: "brewcast_history_cache_events",
      help: "Events kept in memory for GET /v1/events.",
      registers: [registry],
      collect() {
        this.set(reads().keptEvents);
      },
    });
    new Counter({
      name: "brewcast_history_events_served_total",
      help: "Events served in GET /v1/events pages, by where they came from (memory, database).",
      labelNames: ["source"],
      registers: [registry],
      collect() {
        const { served } = reads();
        this.reset();
        this.inc({ source: "memory" }, served.memory);
        this.inc({ source: "database" }, served.database);
      },
    });
  }

  return {
    registry,
    deliveries: new Counter({
      name: "brewcast_deliveries_total",
      help: "Events the bridge published and the broker accepted.",
      labelNames: ["partner"],
      registers: [registry],
    }),
    publishErrors: new Counter({
      name: "brewcast_bridge_publish_errors_total",
      help: "Failed or timed-out publishes (the partner backs off alone).",
      labelNames: ["partner"],
      registers: [registry],
    }),
    httpRequests: new Counter({
      name: "brewcast_http_requests_total",
      help: "HTTP requests by route, method, status and partner.",
      labelNames: ["route", "method", "status", "partner"],
      registers: [registry],
    }),
    httpAuthFailures: () => authFailures.inc({ transport: "http" }),
    stateTransitions: new Counter({
      name: "brewcast_partner_state_transitions_total",
      help: "Moves on the degradation ladder.",
      labelNames: ["partner", "from", "to"],
      registers: [registry],
    }),
    webhookDeliveries: new Counter({
      name: "brewcast_webhook_deliveries_total",
      help: "Webhook delivery attempts by outcome (delivered, failed, refused, gone), and events filtered out (filtered).",
      labelNames: ["partner", "outcome"],
      registers: [registry],
    }),
    render: () => {
      beforeRender();
      return registry.metrics();
    },
    contentType: registry.contentType,
  };
};
