/**
 * Logins, ACLs and live access control for the embedded broker: the Aedes
 * hooks, wrapped once here. Each hook cites the rule it enforces.
 *
 *  - CONNECT: username = credential id and password = secret, or a
 *    registered TLS client certificate. CONNACK 4 bad credentials, 5 revoked
 *    or suspended [MQTT-3.2.2-5]; 3 when the partner is at its connection
 *    limit; 2 for an empty client id with CleanSession=0 [MQTT-3.1.3-8].
 *    Repeated failures of one username from one address are refused in preConnect.
 *  - Client ids are namespaced by credential (`{credential}/{client id}`), so
 *    no client can take over or resume another credential's session.
 *  - A stored subscription is always one its client may hold now: refused
 *    filters are never stored, restored ones are authorized again (see
 *    `mayHold`), and nothing outside a client's scope is ever forwarded to it.
 *  - SUBSCRIBE outside the principal's scope: SUBACK 0x80, still connected.
 *  - PUBLISH anywhere but its own status topic: disconnected, delivered to no one.
 *  - Forwarding: never outside the client's scope, never above the QoS the
 *    matching subscriptions granted [MQTT-3.8.4-6].
 *  - Revocation and suspension close live connections at once.
 */
import { timingSafeEqual } from "node:crypto";
import type { TLSSocket } from "node:tls";
import type { AccessChange, CredentialVerifier, LoginResult } from "../domain/access.ts";
import type { CredentialKind, Principal } from "../domain/partners.ts";
import {
  canPublish,
  canSubscribe,
  isBridgeTopic,
  parseTopic,
  subscribeScope,
  topicMatchesFilter,
} from "../domain/topics.ts";
import { clipClientInput, type Logger } from "../log.ts";
import { usernameForLog } from "./log-fields.ts";
import { createLoginThrottle } from "./login-throttle.ts";

/** What we know about a connection before it logs in. */
export interface ConnectionInfo {
  transport: "tcp" | "tls" | "ws";
  remoteAddress: string;
  tlsSocket?: TLSSocket;
}

/** The parts of an Aedes client (1.2.0) the hooks read. */
export interface HookClient {
  id: string;
  closed: boolean;
  subscriptions: Record<string, { qos: number }>;
  _will?: { topic: string } | null;
  close(done?: () => void): void;
}

interface HookPacket {
  topic: string;
  qos: 0 | 1 | 2;
}

type ConnackCode = 2 | 3 | 4 | 5;

const refuse = (returnCode: ConnackCode, message: string): Error & { returnCode: number } =>
  Object.assign(new Error(message), { returnCode });

const REFUSAL_CODES: Record<"bad_credentials" | "revoked" | "suspended", ConnackCode> = {
  bad_credentials: 4,
  revoked: 5,
  suspended: 5,
};

export interface AccessControlStats {
  authFailures: number;
  throttledConnects: number;
  subscribeDenied: number;
  publishDenied: number;
  /** Stored subscriptions dropped on restore because the client's credential may no longer hold them. */
  restoredSubscriptionsDropped: number;
  connected: Record<string, Record<CredentialKind, number>>;
}

export interface AccessControlOptions {
  verifier: CredentialVerifier;
  log: Logger;
  maxConnectionsPerPartner: number;
  loginFailureLimit: number;
  loginFailureWindowMs: number;
  info(client: HookClient): ConnectionInfo | undefined;
  /**
   * The secret of the bridge's internal identity (username `brewcast-bridge`): the
   * one login allowed to publish events, cursors and partner status. Unset: no
   * such login (the bridge then publishes in-process only).
   */
  bridgeSecret?: string;
}

/** Username of the bridge's internal identity, for a bridge in another process. */
export const BRIDGE_USERNAME = "brewcast-bridge";

const sameSecret = (given: Buffer, expected: string): boolean => {
  const wanted = Buffer.from(expected, "utf8");
  return given.length === wanted.length && timingSafeEqual(given, wanted);
};

export const createAccessControl = (options: AccessControlOptions) => {
  const { verifier, log } = options;
  const principals = new WeakMap<HookClient, Principal>();
  /** Connections logged in as the bridge's internal identity. */
  const bridges = new WeakSet<HookClient>();
  const byPartner = new Map<string, Set<HookClient>>();
  /** The topic prefix of each logged-in client's scope (`partners/p/` or `partners/p/shops/s/`). */
  const scopes = new WeakMap<HookClient, string>();
  /** The latest logged-in connection of each (namespaced) client id: sessions are restored by id. */
  const byClientId = new Map<string, HookClient>();
  /** Connections whose CONNECT had an empty client id and CleanSession=0. */
  const emptyPersistentIds = new WeakSet<HookClient>();
  const throttle = createLoginThrottle(options.loginFailureLimit, options.loginFailureWindowMs);
  const stats = {
    authFailures: 0,
    throttledConnects: 0,
    subscribeDenied: 0,
    publishDenied: 0,
    restoredSubscriptionsDropped: 0,
  };
  /** Bumped on every access change, so a login racing a revocation is checked again. */
  let accessEpoch = 0;

  const release = (client: HookClient): void => {
    const principal = principals.get(client);
    if (!principal) return;
    if (byClientId.get(client.id) === client) byClientId.delete(client.id);
    const set = byPartner.get(principal.partnerId);
    set?.delete(client);
    if (set?.size === 0) byPartner.delete(principal.partnerId);
  };

  const login = async (client: HookClient, username?: string, password?: Buffer): Promise<LoginResult> => {
    const info = options.info(client);
    const tls = info?.tlsSocket;
    if (tls?.authorized) {
      const cert = tls.getPeerCertificate();
      if (cert?.fingerprint256) {
        const result = await verifier.verifyCertificate(
          cert.fingerprint256.replaceAll(":", "").toLowerCase(),
        );
        // A username, if given, must name the certificate's credential.
        if (result.ok && username && username !== result.principal.credentialId) {
          return { ok: false, refusal: "bad_credentials" };
        }
        if (result.ok || !password) return result;
      }
    }
    if (!username || !password) return { ok: false, refusal: "bad_credentials" };
    return verifier.verifySecret(username, password.toString("utf8"));
  };

  const authenticate = async (client: HookClient, username?: string, password?: Buffer): Promise<void> => {
    const remote = options.info(client)?.remoteAddress ?? "unknown";
    // [MQTT-3.1.3-8]: a persistent session needs a name to be resumed by.
    if (emptyPersistentIds.has(client)) throw refuse(2, "identifier rejected");
    if (username === BRIDGE_USERNAME) {
      if (!options.bridgeSecret || !password || !sameSecret(password, options.bridgeSecret) || client._will) {
        stats.authFailures++;
        throttle.fail(remote, username);
        log.warn({ remote }, "mqtt bridge login refused");
        throw refuse(4, "bad_credentials");
      }
      bridges.add(client);
      client.id = `${BRIDGE_USERNAME}/${client.id}`;
      log.info({ remote, clientId: clipClientInput(client.id) }, "bridge connected");
      return;
    }
    let result: LoginResult;
    for (;;) {
      const epoch = accessEpoch;
      result = await login(client, username, password);
      if (epoch === accessEpoch) break;
    }
    if (!result.ok) {
      stats.authFailures++;
      throttle.fail(remote, username);
      log.info({ remote, username: usernameForLog(username), refusal: result.refusal }, "mqtt login refused");
      throw refuse(REFUSAL_CODES[result.refusal], result.refusal);
    }
    const principal = result.principal;
    // The will is published in the client's name: it must be its own status topic.
    const will = client._will;
    if (will && !canPublish(principal, will.topic)) {
      stats.publishDenied++;
      throw refuse(5, "will topic not allowed");
    }
    const set = byPartner.get(principal.partnerId) ?? new Set<HookClient>();
    if (set.size >= options.maxConnectionsPerPartner) {
      log.warn(
        { partnerId: principal.partnerId, limit: options.maxConnectionsPerPartner },
        "mqtt connection limit",
      );
      throw refuse(3, "connection limit reached for this partner");
    }
    set.add(client);
    byPartner.set(principal.partnerId, set);
    principals.set(client, principal);
    scopes.set(client, `${subscribeScope(principal).join("/")}/`);
    client.id = `${principal.credentialId}/${client.id}`;
    byClientId.set(client.id, client);
  };

  const closeWhere = (match: (p: Principal) => boolean, reason: string): number => {
    let closed = 0;
    for (const set of byPartner.values()) {
      for (const client of set) {
        const principal = principals.get(client);
        if (principal && match(principal)) {
          closed++;
          log.info(
            { clientId: clipClientInput(client.id), partnerId: principal.partnerId, reason },
            "mqtt connection closed",
          );
          client.close();
        }
      }
    }
    return closed;
  };

  return {
    principalOf: (client: HookClient) => principals.get(client),

    preConnect(
      client: HookClient,
      packet: { clientId: string; clean: boolean; username?: string },
      cb: (err: Error | null, ok: boolean) => void,
    ): void {
      const remote = options.info(client)?.remoteAddress ?? "unknown";
      if (packet.clientId === "" && !packet.clean) emptyPersistentIds.add(client);
      if (throttle.blocked(remote, packet.username)) {
        stats.throttledConnects++;
        cb(new Error("too many failed logins from this address"), false);
        return;
      }
      cb(null, true);
    },

    authenticate(
      client: HookClient,
      username: string | undefined,
      password: Buffer | undefined,
      cb: (err: Error | null, ok?: boolean) => void,
    ): void {
      authenticate(client, username, password).then(
        () => cb(null, true),
        (error: Error & { returnCode?: number }) => {
          if (error.returnCode === undefined) {
            log.error({ err: error }, "mqtt login failed");
            cb(refuse(3, "login unavailable"), false);
          } else cb(error, false);
        },
      );
    },

    authorizeSubscribe(
      client: HookClient,
      sub: { topic: string; qos: number },
      cb: (err: Error | null, sub: unknown) => void,
    ): void {
      const principal = principals.get(client);
      // The bridge identity has no principal: it publishes only, and subscribes to nothing.
      if (principal && canSubscribe(principal, sub.topic)) {
        cb(null, sub);
        return;
      }
      stats.subscribeDenied++;
      // [MQTT-3.9.3-2] 0x80 in SUBACK; the client stays connected.
      cb(null, null);
    },

    authorizePublish(client: HookClient | null, packet: HookPacket, cb: (err?: Error | null) => void): void {
      if (client === null) {
        // A will left by a broker node that died: validated at its CONNECT; still only status topics.
        cb(parseTopic(packet.topic)?.type === "device_status" ? null : new Error("not allowed"));
        return;
      }
      if (bridges.has(client) && isBridgeTopic(packet.topic)) {
        cb(null);
        return;
      }
      const principal = principals.get(client);
      if (principal && canPublish(principal, packet.topic)) {
        cb(null);
        return;
      }
      stats.publishDenied++;
      log.info(
        { clientId: clipClientInput(client.id), topic: clipClientInput(packet.topic) },
        "mqtt publish refused",
      );
      // MQTT 3.1.1 has no negative PUBACK: the publisher is disconnected, the message goes nowhere.
      cb(new Error("publish not allowed"));
    },

    /**
     * Never forward outside the client's scope (whatever a session store held), nor above the
     * highest QoS granted by a matching subscription [MQTT-3.8.4-6].
     */
    authorizeForward(client: HookClient, packet: HookPacket): HookPacket | null {
      const scope = scopes.get(client);
      if (scope === undefined || !packet.topic.startsWith(scope)) return null;
      if (packet.qos === 0) return packet;
      // Fast path (every delivery of a fan-out comes here): no subscription below the packet's QoS.
      let lower = false;
      for (const filter in client.subscriptions) {
        if (client.subscriptions[filter]!.qos < packet.qos) {
          lower = true;
          break;
        }
      }
      if (!lower) return packet;
      let granted = -1;
      for (const filter in client.subscriptions) {
        const sub = client.subscriptions[filter]!;
        if (sub.qos > granted && topicMatchesFilter(filter, packet.topic)) granted = sub.qos;
      }
      // No live subscription matches (a queued message for a resumed session): keep its stored QoS.
      if (granted >= 0 && packet.qos > granted) packet.qos = granted as 0 | 1 | 2;
      return packet;
    },

    onAccessChange(change: AccessChange): void {
      accessEpoch++;
      if (change.type === "credential_revoked") {
        closeWhere((p) => p.credentialId === change.credentialId, "credential revoked");
      } else if (change.state === "suspended") {
        closeWhere((p) => p.partnerId === change.partnerId, "partner suspended");
      }
    },

    release,

    /**
     * May the client logged in under this (namespaced) id hold this subscription now? Undefined
     * when no such client is logged in here (nothing to decide with).
     */
    mayHold(clientId: string, filter: string): boolean | undefined {
      const client = byClientId.get(clientId);
      const principal = client && principals.get(client);
      return principal ? canSubscribe(principal, filter) : undefined;
    },

    /** The connection logged in under this (namespaced) client id, and whose it is. */
    ownerOf(clientId: string): { client: HookClient; credentialId: string; partnerId: string } | undefined {
      const client = byClientId.get(clientId);
      const principal = client && principals.get(client);
      return (
        principal && { client: client!, credentialId: principal.credentialId, partnerId: principal.partnerId }
      );
    },

    restoredSubscriptionsDropped(count: number): void {
      stats.restoredSubscriptionsDropped += count;
    },

    stats(): AccessControlStats {
      const connected: AccessControlStats["connected"] = {};
      for (const [partnerId, set] of byPartner) {
        const counts = { backend: 0, device: 0 };
        for (const client of set) counts[principals.get(client)!.kind]++;
        connected[partnerId] = counts;
      }
      return { ...stats, connected };
    },
  };
};

export type AccessControl = ReturnType<typeof createAccessControl>;
