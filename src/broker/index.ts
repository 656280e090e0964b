/**
 * The embedded MQTT broker (Aedes 1.2.0): listeners (TCP, TLS/mTLS,
 * WebSocket at /mqtt), logins and per-partner ACLs, limits, live revocation
 * and suspension, and Redis scale-out.
 *
 * Invariants: nothing a client sends reaches another partner's topics; only
 * `publish()` here (the bridge's internal identity) publishes under
 * `partners/…` except a client's own status topic; no packet over
 * `maxPacketBytes` is buffered; a stuck subscriber is dropped after
 * `drainTimeoutMs`.
 *
 * May import: domain, node, aedes and its plugins, ws. Never config or store:
 * the composition root maps configuration to `BrokerOptions`.
 */
import { readFileSync } from "node:fs";
import type { Server as HttpServer, IncomingMessage } from "node:http";
import net from "node:net";
import type { Duplex, Writable } from "node:stream";
import tls from "node:tls";
import { Aedes } from "aedes";
import aedesPersistence from "aedes-persistence";
import { createWebSocketStream, WebSocketServer } from "ws";
import type { AccessChanges, CredentialVerifier } from "../domain/access.ts";
import { listenError } from "../listen-error.ts";
import type { Logger } from "../log.ts";
import {
  type AccessControlStats,
  type ConnectionInfo,
  createAccessControl,
  type HookClient,
} from "./access-control.ts";
import { capOfflineQueues, type OutgoingPersistence } from "./offline-queue.ts";
import { createOrderedPublisher, type OrderedAedes } from "./ordered-publish.ts";
import { guardClientParser } from "./packet-guard.ts";
import { createRedisBackend } from "./redis.ts";
import { createWriteCoalescer } from "./write-coalescing.ts";

export interface BrokerOptions {
  host: string;
  mqttPort: number;
  mqttsPort?: number;
  /** PEM file paths. With `ca`, clients may log in with a registered client certificate. */
  tls?: { cert: string; key: string; ca?: string };
  maxPacketBytes: number;
  maxConnectionsPerPartner: number;
  drainTimeoutMs: number;
  offlineQueueMax: number;
  sessionTtlSeconds: number;
  redisUrl?: string;
  /** Prefix of every Redis key and channel (tests run side by side). Default `brewcast:`. */
  redisPrefix?: string;
  log: Logger;
  verifier: CredentialVerifier;
  accessChanges: AccessChanges;
  /** Secret of the bridge's internal identity (username `brewcast-bridge`) for a bridge in another process. */
  bridgeSecret?: string;
  /** Failed logins per source address before its connections are refused (default 20 per minute). */
  loginFailureLimit?: number;
  loginFailureWindowMs?: number;
  /** How often expired sessions are swept (default: a tenth of the TTL, at most a minute). */
  sessionSweepMs?: number;
}

export interface BrokerStats extends AccessControlStats {
  /** Same as `connected`: clients logged in now, by partner and credential kind. */
  connectedByPartner: AccessControlStats["connected"];
  /** Queued messages dropped because a session's offline queue was full (REST recovers them). */
  offlineQueueDrops: number;
  oversizeClosed: number;
  malformedClosed: number;
  sessionsExpired: number;
  drainTimeouts: number;
}

export interface Broker {
  readonly ports: { mqtt: number; mqtts?: number };
  /** Serve MQTT over WebSocket at /mqtt on an existing node:http server (the API's). */
  attachWebSocket(server: HttpServer): void;
  /** In-process publish as the internal bridge identity; resolves when Aedes called back. */
  publish(packet: {
    topic: string;
    payload: Buffer | string;
    qos: 0 | 1 | 2;
    retain: boolean;
  }): Promise<void>;
  stats(): BrokerStats;
  /** Close listeners and clients; resolves when done. */
  close(): Promise<void>;
}

const listen = (server: net.Server, host: string, port: number, variable: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      reject(listenError(variable, host, port, error));
    };
    const onListening = () => {
      server.off("error", onError);
      resolve((server.address() as net.AddressInfo).port);
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(port, host);
  });

const closeServer = (server: net.Server): Promise<void> =>
  new Promise((resolve) => server.close(() => resolve()));

const readPem = (path: string, variable: string): Buffer => {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new Error(`${variable}=${path}: cannot be read (${(error as NodeJS.ErrnoException).code})`);
  }
};

export async function startBroker(options: BrokerOptions): Promise<Broker> {
  const { log } = options;
  const infos = new WeakMap<object, ConnectionInfo>();
  const counters = { oversizeClosed: 0, malformedClosed: 0, sessionsExpired: 0, drainTimeouts: 0 };

  const access = createAccessControl({
    verifier: options.verifier,
    ...(options.bridgeSecret ? { bridgeSecret: options.bridgeSecret } : {}),
    log,
    maxConnectionsPerPartner: options.maxConnectionsPerPartner,
    loginFailureLimit: options.loginFailureLimit ?? 20,
    loginFailureWindowMs: options.loginFailureWindowMs ?? 60_000,
    info: (client) => infos.get(client),
  });

  const redis = options.redisUrl
    ? createRedisBackend(options.redisUrl, options.redisPrefix ?? "brewcast:")
    : null;
  const memoryPersistence = aedesPersistence as unknown as () => unknown;
  const persistence = redis ? redis.persistence : memoryPersistence();
  let connectedIds: Record<string, unknown> = {};
  const queues = capOfflineQueues(
    persistence as unknown as OutgoingPersistence,
    options.offlineQueueMax,
    (clientId) => clientId in connectedIds,
  );

  const holdWrites = createWriteCoalescer();
  const aedes = await Aedes.createBroker({
    persistence: persistence as never,
    ...(redis ? { mq: redis.mq } : {}),
    drainTimeout: options.drainTimeoutMs,
    preConnect: access.preConnect as never,
    authenticate: access.authenticate as never,
    authorizeSubscribe: access.authorizeSubscribe as never,
    authorizePublish: access.authorizePublish as never,
    authorizeForward: ((
      client: HookClient & { conn: Writable },
      packet: Parameters<typeof access.authorizeForward>[1],
    ) => {
      const forwarded = access.authorizeForward(client, packet);
      if (forwarded) holdWrites(client.conn);
      return forwarded;
    }) as never,
  });
  const drained = new WeakSet<object>();
  connectedIds = (aedes as unknown as { clients: Record<string, unknown> }).clients;
  aedes.on("clientError", (client, error) => {
    log.debug({ clientId: client.id, err: error }, "mqtt client error");
    if (error.message === "drain timeout" && !drained.has(client)) {
      drained.add(client);
      counters.drainTimeouts++;
      log.warn({ clientId: client.id }, "mqtt subscriber dropped: drain timeout");
    }
  });

  // Session expiry: persistent sessions unused for the TTL are forgotten (subscriptions and queue).
  const lastSeen = new Map<string, number>();
  aedes.on("client", (client) => lastSeen.delete(client.id));
  aedes.on("clientDisconnect", (client) => {
    if (!(client as unknown as { clean: boolean }).clean) lastSeen.set(client.id, Date.now());
  });
  const ttlMs = options.sessionTtlSeconds * 1000;
  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const [clientId, seen] of lastSeen) {
        if (
          now - seen < ttlMs ||
          (aedes as unknown as { clients: Record<string, unknown> }).clients[clientId]
        )
          continue;
        lastSeen.delete(clientId);
        counters.sessionsExpired++;
        queues.forget(clientId).catch((error) => log.warn({ err: error, clientId }, "session expiry failed"));
      }
    },
    options.sessionSweepMs ?? Math.min(Math.max(ttlMs / 10, 1000), 60_000),
  );
  sweep.unref();

  const unsubscribeAccess = options.accessChanges.subscribe((change) => access.onAccessChange(change));

  const handle = (conn: Duplex, info: ConnectionInfo, req?: IncomingMessage): void => {
    const client = aedes.handle(conn as net.Socket, req as never) as unknown as HookClient;
    infos.set(client, info);
    guardClientParser(client, options.maxPacketBytes, (verdict) => {
      if (verdict === "oversize") counters.oversizeClosed++;
      else counters.malformedClosed++;
      log.info(
        { remote: info.remoteAddress, transport: info.transport, verdict },
        "mqtt connection closed: packet",
      );
    });
    conn.once("close", () => access.release(client));
  };

  const servers: net.Server[] = [];
  const sockets = new Set<Duplex>();
  const track = (socket: Duplex) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };

  const tcp = net.createServer((socket) => {
    track(socket);
    handle(socket, { transport: "tcp", remoteAddress: socket.remoteAddress ?? "unknown" });
  });
  servers.push(tcp);
  const ports: { mqtt: number; mqtts?: number } = { mqtt: 0 };
  try {
    ports.mqtt = await listen(tcp, options.host, options.mqttPort, "BREWCAST_MQTT_PORT");
    if (options.mqttsPort !== undefined) {
      if (!options.tls)
        throw new Error("BREWCAST_MQTTS_PORT is set: BREWCAST_TLS_CERT and BREWCAST_TLS_KEY are required");
      const secure = tls.createServer(
        {
          cert: readPem(options.tls.cert, "BREWCAST_TLS_CERT"),
          key: readPem(options.tls.key, "BREWCAST_TLS_KEY"),
          ...(options.tls.ca
            ? { ca: readPem(options.tls.ca, "BREWCAST_TLS_CA"), requestCert: true, rejectUnauthorized: false }
            : {}),
        },
        (socket) => {
          track(socket);
          handle(socket, {
            transport: "tls",
            remoteAddress: socket.remoteAddress ?? "unknown",
            tlsSocket: socket,
          });
        },
      );
      secure.on("tlsClientError", (error) => log.debug({ err: error }, "mqtts handshake failed"));
      servers.push(secure);
      ports.mqtts = await listen(secure, options.host, options.mqttsPort, "BREWCAST_MQTTS_PORT");
    }
  } catch (error) {
    await Promise.all(servers.filter((s) => s.listening).map(closeServer));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    unsubscribeAccess();
    clearInterval(sweep);
    await redis?.close();
    throw error;
  }

  const webSocketServers: WebSocketServer[] = [];
  const publishInOrder = createOrderedPublisher(aedes as unknown as OrderedAedes);
  let closed: Promise<void> | null = null;

  return {
    ports,
    attachWebSocket(server) {
      // ws checks frame sizes too: a frame over the limit is refused before it is buffered.
      const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPacketBytes });
      webSocketServers.push(wss);
      server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        const path = (req.url ?? "").split("?")[0];
        if (path !== "/mqtt") {
          if (server.listenerCount("upgrade") === 1) socket.destroy();
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => {
          const stream = createWebSocketStream(ws);
          track(stream);
          stream.on("error", () => undefined);
          handle(stream, { transport: "ws", remoteAddress: req.socket.remoteAddress ?? "unknown" }, req);
        });
      });
    },
    publish: publishInOrder,
    stats() {
      const stats = access.stats();
      return {
        ...stats,
        connectedByPartner: stats.connected,
        ...counters,
        offlineQueueDrops: queues.dropped(),
      };
    },
    close() {
      closed ??= (async () => {
        unsubscribeAccess();
        clearInterval(sweep);
        const serversClosed = Promise.all(servers.map(closeServer));
        for (const wss of webSocketServers) wss.close();
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await serversClosed;
        await redis?.close();
      })();
      return closed;
    },
  };
}
export { BRIDGE_USERNAME } from "./access-control.ts";
