/**
 * The embedded MQTT broker, configured from the environment's config and
 * wired to the store's credentials, access changes and MQTT sessions.
 */
import type { Broker } from "../broker/index.ts";
import { startBroker } from "../broker/index.ts";
import type { Config } from "../config/schema.ts";
import type { AccessChanges, CredentialVerifier } from "../domain/access.ts";
import type { Logger } from "../log.ts";
import type { Db } from "../store/db.ts";
import type { EventTextCache } from "../store/event-text-cache.ts";
import { createSessionLog, createSessionStore } from "../store/mqtt-sessions.ts";

export interface BrokerWiring {
  config: Config;
  log: Logger;
  db: Db;
  verifier: CredentialVerifier;
  accessChanges: AccessChanges;
  /** The process's recent events in memory: a replay takes what it can from there. */
  recentEvents: EventTextCache;
}

export const startConfiguredBroker = ({
  config,
  log,
  db,
  verifier,
  accessChanges,
  recentEvents,
}: BrokerWiring): Promise<Broker> =>
  startBroker({
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
    sessions: { store: createSessionStore(db), log: createSessionLog(db, recentEvents) },
    sessionFlushMs: config.BREWCAST_SESSION_FLUSH_MS,
    sessionTtlSeconds: config.BREWCAST_SESSION_TTL,
    ...(config.REDIS_URL ? { redisUrl: config.REDIS_URL } : {}),
    log: log.child({ component: "broker" }),
    verifier,
    accessChanges,
    ...(config.BREWCAST_BRIDGE_SECRET ? { bridgeSecret: config.BREWCAST_BRIDGE_SECRET } : {}),
  });
