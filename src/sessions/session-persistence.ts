/**
 * Persistent MQTT sessions as positions in the event log, as an Aedes 1.2
 * persistence (the interface of aedes-persistence 11).
 *
 * The log is the truth, so a session keeps no copies of events: only its
 * authorized subscriptions and, per partner, the highest seq its client
 * acknowledged in order (`SessionStore`, in the database: on any node,
 * after any restart). Progress is written coalesced (every `flushMs`) and
 * at disconnect; a crash re-delivers at most that window, never skips.
 *
 * On resume (sessionPresent=1) the session is sent, in this order: the
 * PUBRELs it still owes [MQTT-4.4.0-1]; the current status of each device
 * its subscriptions follow (state, not history: no queue of status
 * messages); then the log after its position, filtered by its QoS 1/2
 * subscriptions, in seq order, at the granted QoS, RETAIN=0 [MQTT-3.3.1-9],
 * DUP=1 and the same packet id for what was in flight [MQTT-3.3.1-1]. Live
 * messages that arrive meanwhile are held back (`forward`) and sent after
 * the log in the order they came, repeats dropped by seq; the gate opens
 * only once everything before has been written, so nothing overtakes.
 *
 * The replay itself is in replay.ts, the held live messages in
 * held-live-messages.ts, what the delegate keeps in delegate.ts.
 *
 * Nothing is queued per message (`outgoingEnqueue*` do nothing,
 * `subscriptionsByTopic` matches nothing): an offline session costs one row.
 * Retained messages, wills and inbound QoS 2 stay with the delegate (memory,
 * or Redis to share them between broker nodes).
 *
 * May import: domain and node. The broker wires it; the store implements
 * its ports.
 */
import { Readable } from "node:stream";
import type {
  SessionLog,
  SessionProgress,
  SessionRecord,
  SessionStore,
  SessionSubscription,
} from "../domain/sessions.ts";
import { createAckTracker } from "./acknowledgements.ts";
import { type DelegatePersistence, delegatedMethods } from "./delegate.ts";
import { type ForwardedPacket, holdOrPass } from "./held-live-messages.ts";
import { type Client, isOrderEventTopic, type LiveSession, type Packet, SESSION } from "./live-session.ts";
import { replay } from "./replay.ts";
import { planReplay, readLeadingSeq } from "./replay-plan.ts";

export type { DelegatePersistence } from "./delegate.ts";

export interface SessionPersistenceOptions {
  store: SessionStore;
  log: SessionLog;
  delegate: DelegatePersistence;
  /** The connection logged in under this (namespaced) client id here, and whose it is. */
  ownerOf(clientId: string): { client: object; credentialId: string; partnerId: string } | undefined;
  /** How often progress is written (and the most a crash re-delivers). */
  flushMs: number;
  ttlSeconds: number;
  sweepMs: number;
  /** How long a replay waits for a full connection to drain before dropping the client. */
  drainTimeoutMs: number;
  /** Told about anything that went wrong off the client's path (a write that will be retried). */
  onError(error: unknown, what: string): void;
  /** Told when a stored session could not be resumed and was ended. */
  onEnded?(clientId: string, reason: SessionEndReason): void;
}

export type SessionEndReason = "past_retention" | "log_reset";

export interface SessionStats {
  /** Sessions removed after BREWCAST_SESSION_TTL unused. */
  expired: number;
  /** Stored sessions that could not be resumed, by why. */
  ended: Record<SessionEndReason, number>;
  /** Events sent from the log to resumed sessions. */
  replayed: number;
  /** Live messages dropped from a replay's hold (its events are read from the log again). */
  heldDropped: number;
  /** Persistent sessions connected to this node. */
  connected: number;
  /** PUBACKs taken in bulk off the wire, before Aedes's parser (src/broker/puback-fast-path.ts). */
  acknowledgedInBulk: number;
}

const progressOf = (live: LiveSession): SessionProgress => ({
  clientId: live.clientId,
  position: live.tracker.position,
  sentSeq: live.tracker.sentSeq,
  inflight: live.tracker.inflightIds(),
  pubrels: live.tracker.pubrels(),
});

/** PUBACK or PUBCOMP: the message is acknowledged, or its packet id free again after PUBREL. */
const clearMessageId = (session: LiveSession, messageId: number): void => {
  if (session.tracker.awaitingPubcomp(messageId)) session.tracker.completed(messageId);
  else session.tracker.acked(messageId);
};

export const createSessionPersistence = (options: SessionPersistenceOptions) => {
  const { store, log, delegate } = options;
  const live = new Set<LiveSession>();
  const byId = new Map<string, LiveSession>();
  /** Progress being written at disconnect, by client id: a quick reconnect reads after it. */
  const flushing = new Map<string, Promise<void>>();
  /** Sessions closed this turn, written together at the next. */
  let closing: { sessions: LiveSession[]; written: Promise<void> } | undefined;
  const stats: SessionStats = {
    expired: 0,
    ended: { past_retention: 0, log_reset: 0 },
    replayed: 0,
    heldDropped: 0,
    connected: 0,
    acknowledgedInBulk: 0,
  };
  const timers: NodeJS.Timeout[] = [];
  let aedes: unknown;

  const attach = (client: Client, record: SessionRecord, resuming: boolean): LiveSession => {
    const session: LiveSession = {
      clientId: client.id,
      partnerId: record.partnerId,
      tracker: createAckTracker({
        position: record.position,
        sentSeq: record.sentSeq,
        pubrels: record.pubrels,
      }),
      subscriptions: record.subscriptions,
      plan: record.partnerId === null ? undefined : planReplay(record.partnerId, record.subscriptions),
      resume: resuming
        ? { inflight: record.inflight, sentSeq: record.sentSeq, pubrels: record.pubrels }
        : undefined,
      held: resuming ? { packets: [], overflows: 0 } : undefined,
      sentByReplay: undefined,
      dirty: false,
      closed: false,
      discarded: false,
      wake: undefined,
    };
    const previous = byId.get(client.id);
    if (previous && previous !== session) previous.wake?.();
    client[SESSION] = session;
    byId.set(client.id, session);
    live.add(session);
    return session;
  };

  const setSubscriptions = (session: LiveSession, subscriptions: SessionSubscription[]) => {
    session.subscriptions = subscriptions;
    session.plan = session.partnerId === null ? undefined : planReplay(session.partnerId, subscriptions);
  };

  const flush = async (sessions: LiveSession[]): Promise<void> => {
    const dirty = sessions.filter((session) => session.dirty && !session.discarded);
    if (dirty.length === 0) return;
    for (const session of dirty) session.dirty = false;
    try {
      await store.saveProgress(dirty.map(progressOf));
    } catch (error) {
      for (const session of dirty) session.dirty = true;
      options.onError(error, "saving session progress");
    }
  };

  const endReason = async (record: SessionRecord): Promise<SessionEndReason | undefined> => {
    if (record.epoch !== null && record.epoch !== (await log.epoch())) return "log_reset";
    if (record.partnerId !== null) {
      // A session following one shop is ended only if an event of that shop was pruned unseen.
      const shopId = planReplay(record.partnerId, record.subscriptions).shopId;
      if (record.position < (await log.prunedThrough(record.partnerId, shopId))) return "past_retention";
    }
    return undefined;
  };

  const persistence = {
    /** The broker this persistence serves (aedes-persistence exposes it; its tests read it). */
    get broker(): unknown {
      return aedes;
    },

    async setup(broker: unknown): Promise<void> {
      aedes = broker;
      await delegate.setup(broker);
      const every = (ms: number, run: () => Promise<unknown>) => {
        const timer = setInterval(
          () => void run().catch((error) => options.onError(error, "session upkeep")),
          ms,
        );
        timer.unref();
        timers.push(timer);
      };
      every(options.flushMs, () => flush([...live]));
      // Connected sessions stay fresh for the expiry sweep of every node.
      every(Math.max(1_000, Math.min(options.ttlSeconds * 250, 600_000)), () =>
        store.touch([...live].map((session) => session.clientId)),
      );
      every(options.sweepMs, async () => {
        stats.expired += await store.expire(
          options.ttlSeconds,
          [...live].map((session) => session.clientId),
        );
      });
    },

    // Retained messages, wills and inbound QoS 2: the delegate's.
    ...delegatedMethods(delegate),

    async addSubscriptions(client: Client, subs: SessionSubscription[]): Promise<void> {
      const owner = options.ownerOf(client.id);
      // One per topic, the last given wins (a SUBSCRIBE may name a filter twice).
      const byTopic = new Map<string, SessionSubscription>();
      for (const sub of subs) byTopic.set(sub.topic, sub);
      const record = await store.addSubscriptions(
        client.id,
        owner ? { credentialId: owner.credentialId, partnerId: owner.partnerId } : null,
        [...byTopic.values()].map(({ topic, qos, rh, rap, nl, subscriptionIdentifier }) => ({
          topic,
          qos,
          ...(rh === undefined ? {} : { rh }),
          ...(rap === undefined ? {} : { rap }),
          ...(nl === undefined ? {} : { nl }),
          ...(subscriptionIdentifier === undefined ? {} : { subscriptionIdentifier }),
        })),
      );
      const session = client[SESSION];
      if (session) setSubscriptions(session, record.subscriptions);
      else attach(client, record, false);
    },

    async removeSubscriptions(client: { id: string }, topics: string[]): Promise<void> {
      await store.removeSubscriptions(client.id, topics);
      const session = byId.get(client.id);
      if (session)
        setSubscriptions(
          session,
          session.subscriptions.filter((sub) => !topics.includes(sub.topic)),
        );
    },

    /** A CONNECT with CleanSession=0: the stored session, resumed here, or nothing (sessionPresent=0). */
    async subscriptionsByClient(client: { id: string }): Promise<SessionSubscription[]> {
      await flushing.get(client.id);
      const record = await store.load(client.id);
      if (!record || record.subscriptions.length === 0) return [];
      const ended = await endReason(record);
      if (ended) {
        await store.delete(client.id);
        stats.ended[ended]++;
        options.onEnded?.(client.id, ended);
        return [];
      }
      const owner = options.ownerOf(client.id);
      if (owner) attach(owner.client as Client, record, true);
      return record.subscriptions;
    },

    async cleanSubscriptions(client: { id: string }): Promise<void> {
      const session = byId.get(client.id);
      if (session) session.discarded = true;
      await store.delete(client.id);
    },

    async countOffline() {
      return store.countOffline();
    },

    getClientList(topic: string): Readable {
      return Readable.from(
        (async function* () {
          yield* await store.clientsSubscribedTo(topic);
        })(),
      );
    },

    /** Nothing is matched, so nothing is queued per message: a session replays the log instead. */
    async subscriptionsByTopic(_topic: string): Promise<never[]> {
      return [];
    },
    async outgoingEnqueue(): Promise<void> {},
    async outgoingEnqueueCombi(): Promise<void> {},

    /** A QoS 1/2 message is about to be written to a persistent session (or a PUBREC came in). */
    async outgoingUpdate(client: Client, packet: Packet): Promise<void> {
      const session = client[SESSION];
      if (session === undefined) return;
      const messageId = packet.messageId;
      if (messageId === undefined) return;
      if (packet.cmd === "pubrel") {
        // PUBREC: the client has the message; the packet id stays taken until PUBCOMP.
        session.tracker.acked(messageId);
        session.tracker.pubrelSent(messageId);
        session.dirty = true;
        session.wake?.();
        return;
      }
      if (packet.qos === 0) return;
      let mark: number | undefined;
      let eventSeq: number | undefined;
      if (isOrderEventTopic(packet.topic)) {
        eventSeq = readLeadingSeq(packet.payload);
        mark = eventSeq;
      } else if (session.plan?.coveringCursors.has(packet.topic)) {
        mark = readLeadingSeq(packet.payload);
      }
      session.tracker.sent(messageId, mark, eventSeq);
      session.dirty = true;
    },

    /** PUBACK, PUBCOMP, or a message Aedes decided not to write. */
    async outgoingClearMessageId(client: Client, packet: { messageId?: number }): Promise<undefined> {
      const session = client[SESSION];
      const messageId = packet?.messageId;
      if (session === undefined || messageId === undefined) return undefined;
      clearMessageId(session, messageId);
      session.dirty = true;
      session.wake?.();
      return undefined;
    },

    outgoingStream(client: Client): Readable {
      const session = client[SESSION];
      // Nothing is queued for Aedes to send. A resumed session's replay starts now (after its
      // CONNACK) and writes to the connection itself; until it is done, live messages are held.
      if (session?.held !== undefined && session.resume !== undefined && client.conn) {
        replay(client, session, {
          log,
          stats,
          drainTimeoutMs: options.drainTimeoutMs,
          retained: (filters) => delegate.createRetainedStreamCombi(filters) as AsyncIterable<Packet>,
        }).catch((error) => {
          options.onError(error, "replaying a session");
          client.conn?.destroy();
        });
      }
      return Readable.from([]);
    },

    async destroy(): Promise<void> {
      for (const timer of timers.splice(0)) clearInterval(timer);
      await flush([...live]);
      await Promise.all(flushing.values());
      await delegate.destroy();
    },

    // ---- brewcast's own, called by the broker

    /**
     * Every message Aedes is about to forward to a client (after the access checks). Held back
     * while the client's session is replaying; live events a replay already sent are dropped.
     */
    forward<P extends ForwardedPacket>(client: object, packet: P): P | null {
      return holdOrPass((client as Client)[SESSION], packet, stats);
    },

    /**
     * PUBACKs read in bulk off the wire (src/broker/puback-fast-path.ts), taken as
     * `outgoingClearMessageId` takes each; false when the client has no persistent session here.
     */
    acknowledge(client: object, messageIds: number[]): boolean {
      const session = (client as Client)[SESSION];
      if (session === undefined) return false;
      for (const messageId of messageIds) clearMessageId(session, messageId);
      stats.acknowledgedInBulk += messageIds.length;
      session.dirty = true;
      session.wake?.();
      return true;
    },

    /** The client's connection closed: its progress is written now. */
    disconnected(client: object): void {
      const session = (client as Client)[SESSION];
      if (session === undefined || session.closed) return;
      session.closed = true;
      session.wake?.();
      live.delete(session);
      if (byId.get(session.clientId) === session) byId.delete(session.clientId);
      if (session.discarded) return;
      session.dirty = true;
      // Sessions that close in the same turn (a network blip, a node going away) are written together.
      if (closing === undefined) {
        const sessions: LiveSession[] = [];
        const written = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
          closing = undefined;
          return flush(sessions);
        });
        closing = { sessions, written };
      }
      closing.sessions.push(session);
      const written = closing.written.finally(() => {
        if (flushing.get(session.clientId) === written) flushing.delete(session.clientId);
      });
      flushing.set(session.clientId, written);
    },

    stats(): SessionStats {
      return { ...stats, ended: { ...stats.ended }, connected: live.size };
    },
  };
  return persistence;
};

export type SessionPersistence = ReturnType<typeof createSessionPersistence>;
