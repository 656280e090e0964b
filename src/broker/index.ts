/**
 * The embedded MQTT broker (Aedes 1.2.0): listeners (TCP, TLS/mTLS,
 * WebSocket at /mqtt), logins and per-partner ACLs, limits, live revocation
 * and suspension, persistent sessions (positions in the event log, see
 * src/sessions/) and Redis scale-out.
 *
 * Invariants: nothing a client sends reaches another partner's topics, and no
 * stored subscription outlives its authorization; only
 * `publish()` here (the bridge's internal identity) publishes under
 * `partners/…` except a client's own status topic; no packet over
 * `maxPacketBytes` is buffered; a stuck subscriber is dropped after
 * `drainTimeoutMs`; connections that have not logged in are bounded per
 * listener and per source address, and closed if CONNECT does not come in time.
 *
 * May import: domain, sessions, node, aedes and its plugins, ws. Never config
 * or store: the composition root maps configuration to `BrokerOptions` and
 * hands it the session store and the log as ports.
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
import type { SessionLog, SessionStore } from "../domain/sessions.ts";
import { listenError } from "../listen-error.ts";
import { clipClientInput, type Logger } from "../log.ts";
import {
  createSessionPersistence,
  type DelegatePersistence,
  type SessionStats,
} from "../sessions/session-persistence.ts";
import {
  type AccessControlStats,
  type ConnectionInfo,
  createAccessControl,
  type HookClient,
} from "./access-control.ts";
import { keepSubscriptionsAuthorized, type SubscriptionPersistence } from "./authorized-subscriptions.ts";
import { createConnectionGate, type GateRefusal } from "./connection-gate.ts";
import { createOrderedPublisher, type OrderedAedes } from "./ordered-publish.ts";
import { guardClientParser } from "./packet-guard.ts";
import { installPubackFastPath } from "./puback-fast-path.ts";
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
  /** Connections each listener (TCP, TLS, WebSocket) holds at once (default 5,000). */
  maxConnections?: number;
  /** Connections one source address holds before they log in (default 100). */
  maxPendingPerAddress?: number;
  /** How long a connection may take to send CONNECT (default 5,000 ms). */
  connectTimeoutMs?: number;
  drainTimeoutMs: number;
  /** Persistent sessions: where they are kept, and the log they are positions in. */
  sessions: { store: SessionStore; log: SessionLog };
  /** How often sessions' progress is written (default 1,000 ms): the most a crash re-delivers. */
  sessionFlushMs?: number;
  sessionTtlSeconds: number;
  redisUrl?: string;
  /** Prefix of every Redis key and channel (tests run side by side). Default `brewcast:`. */
  redisPrefix?: string;
  log: Logger;
  verifier: CredentialVerifier;
  accessChanges: AccessChanges;
  /** Secret of the bridge's internal identity (username `brewcast-bridge`) for a bridge in another process. */
  bridgeSecret?: string;
  /** Failed logins of one username from one address before that pair is refused (default 10 a minute). */
  loginFailureLimit?: number;
  loginFailureWindowMs?: number;
  /** How often expired sessions are swept (default: a tenth of the TTL, at most a minute). */
  sessionSweepMs?: number;
}

export interface BrokerStats extends AccessControlStats {
  /** Same as `connected`: clients logged in now, by partner and credential kind. */
  connectedByPartner: AccessControlStats["connected"];
  /** Persistent sessions: expired, ended on resume, events replayed, connected here. */
  sessions: SessionStats;
  oversizeClosed: number;
  malformedClosed: number;
  drainTimeouts: number;
  /** Connections closed at accept by the limits before login. */
  connectionsRefused: Readonly<Record<GateRefusal, number>>;
  /** Connections that have not logged in yet. */
  pendingLogins: number;
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
  const counters = { oversizeClosed: 0, malformedClosed: 0, drainTimeouts: 0 };

  const access = createAccessControl({
    verifier: options.verifier,
    ...(options.bridgeSecret ? { bridgeSecret: options.bridgeSecret } : {}),
    log,
    maxConnectionsPerPartner: options.maxConnectionsPerPartner,
    loginFailureLimit: options.loginFailureLimit ?? 10,
    loginFailureWindowMs: options.loginFailureWindowMs ?? 60_000,
    info: (client) => infos.get(client),
  });

  const redis = options.redisUrl
    ? createRedisBackend(options.redisUrl, options.redisPrefix ?? "brewcast:")
    : null;
  const memoryPersistence = aedesPersistence as unknown as () => DelegatePersistence;
  const ttlMs = options.sessionTtlSeconds * 1000;
  const persistence = createSessionPersistence({
    store: options.sessions.store,
    log: options.sessions.log,
    // Retained messages, wills and inbound QoS 2: in memory, or in Redis to share them between nodes.
    delegate: redis ? (redis.persistence as DelegatePersistence) : memoryPersistence(),
    ownerOf: access.ownerOf,
    flushMs: options.sessionFlushMs ?? 1_000,
    ttlSeconds: options.sessionTtlSeconds,
    sweepMs: options.sessionSweepMs ?? Math.min(Math.max(ttlMs / 10, 1000), 60_000),
    drainTimeoutMs: options.drainTimeoutMs,
    onError: (error, what) => log.warn({ err: error }, `mqtt sessions: ${what} failed`),
    onEnded: (clientId, reason) =>
      log.info({ clientId: clipClientInput(clientId), reason }, "mqtt session ended: cannot be resumed"),
  });
  keepSubscriptionsAuthorized(persistence as unknown as SubscriptionPersistence, {
    mayHold: access.mayHold,
    dropped(clientId, filters) {
      access.restoredSubscriptionsDropped(filters.length);
      log.info(
        { clientId: clipClientInput(clientId), filters: filters.map(clipClientInput) },
        "stored subscriptions dropped: no longer allowed",
      );
    },
  });

  const gate = createConnectionGate({
    maxPerListener: options.maxConnections ?? 5_000,
    maxPendingPerAddress: options.maxPendingPerAddress ?? 100,
  });
  const holdWrites = createWriteCoalescer();
  const aedes = await Aedes.createBroker({
    persistence: persistence as never,
    ...(redis ? { mq: redis.mq } : {}),
    drainTimeout: options.drainTimeoutMs,
    connectTimeout: options.connectTimeoutMs ?? 5_000,
    preConnect: access.preConnect as never,
    authenticate: access.authenticate as never,
    authorizeSubscribe: access.authorizeSubscribe as never,
    authorizePublish: access.authorizePublish as never,
    authorizeForward: ((
      client: HookClient & { conn: Writable },
      packet: Parameters<typeof access.authorizeForward>[1],
    ) => {
      const allowed = access.authorizeForward(client, packet);
      // A resuming session holds live messages back until its replay is written.
      const forwarded = allowed && persistence.forward(client, allowed);
      if (forwarded) holdWrites(client.conn);
      return forwarded;
    }) as never,
  });
  const drained = new WeakSet<object>();
  aedes.on("clientError", (client, error) => {
    log.debug({ clientId: clipClientInput(client.id), err: error }, "mqtt client error");
    if (error.message === "drain timeout" && !drained.has(client)) {
      drained.add(client);
      counters.drainTimeouts++;
      log.warn({ clientId: clipClientInput(client.id) }, "mqtt subscriber dropped: drain timeout");
    }
  });

  const unsubscribeAccess = options.accessChanges.subscribe((change) => access.onAccessChange(change));

  // A connection leaves the per-address count of those not logged in once Aedes registers it.
  const pendingSlots = new WeakMap<object, () => void>();
  aedes.on("client", (client) => pendingSlots.get(client)?.());

  const handle = (conn: Duplex, info: ConnectionInfo, req?: IncomingMessage): void => {
    const pendingSlot = gate.admit(info.remoteAddress);
    if (typeof pendingSlot === "string") {
      conn.destroy();
      return;
    }
    conn.once("close", pendingSlot);
    const client = aedes.handle(conn as net.Socket, req as never) as unknown as HookClient;
    pendingSlots.set(client, pendingSlot);
    infos.set(client, info);
    // Under the guard: the guard reads every byte first, then PUBACKs of persistent sessions skip
    // Aedes's parser.
    installPubackFastPath(client, (messageIds) => persistence.acknowledge(client, messageIds));
    guardClientParser(client, options.maxPacketBytes, (verdict) => {
      if (verdict === "oversize") counters.oversizeClosed++;
      else counters.malformedClosed++;
      log.info(
        { remote: info.remoteAddress, transport: info.transport, verdict },
        "mqtt connection closed: packet",
      );
    });
    conn.once("close", () => {
      access.release(client);
      persistence.disconnected(client);
    });
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
  // Node closes a socket over maxConnections at accept and says so with 'drop'.
  const capListener = (server: net.Server) => {
    server.maxConnections = options.maxConnections ?? 5_000;
    server.on("drop", () => gate.refused("listener_full"));
  };
  capListener(tcp);
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
      capListener(secure);
      servers.push(secure);
      ports.mqtts = await listen(secure, options.host, options.mqttsPort, "BREWCAST_MQTTS_PORT");
    }
  } catch (error) {
    await Promise.all(servers.filter((s) => s.listening).map(closeServer));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    unsubscribeAccess();
    await persistence.destroy();
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
      const listener = { open: 0 };
      server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        const path = (req.url ?? "").split("?")[0];
        if (path !== "/mqtt") {
          if (server.listenerCount("upgrade") === 1) socket.destroy();
          return;
        }
        const slot = gate.admitToListener(listener);
        if (typeof slot === "string") {
          socket.destroy();
          return;
        }
        socket.once("close", slot);
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
        sessions: persistence.stats(),
        connectionsRefused: gate.refusals,
        pendingLogins: gate.pending(),
      };
    },
    close() {
      closed ??= (async () => {
        unsubscribeAccess();
        const serversClosed = Promise.all(servers.map(closeServer));
        for (const wss of webSocketServers) wss.close();
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await serversClosed;
        // Every session's progress is written (the clients' closes started it), then the delegate ends.
        await persistence.destroy();
      })();
      return closed;
    },
  };
}
export { BRIDGE_USERNAME } from "./access-control.ts";
