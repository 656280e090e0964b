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
 * The replay writes to the client's connection itself, a batch of packets
 * per write, instead of handing Aedes one packet per turn of the event loop
 * through `outgoingStream` (its `emptyQueue` waits an immediate after each):
 * that path was a third of a replay's time. The event JSON comes from the
 * store as text, never parsed to be stringified again.
 *
 * Nothing is queued per message (`outgoingEnqueue*` do nothing,
 * `subscriptionsByTopic` matches nothing): an offline session costs one row.
 * Retained messages, wills and inbound QoS 2 stay with the delegate (memory,
 * or Redis to share them between broker nodes).
 *
 * May import: domain and node. The broker wires it; the store implements
 * its ports.
 */
import { Readable, type Writable } from "node:stream";
import mqttPacket from "mqtt-packet";
import { EVENT_KIND } from "../domain/events.ts";
import { pushesEvents } from "../domain/partners.ts";
import type {
  LoggedEvent,
  SessionLog,
  SessionProgress,
  SessionRecord,
  SessionStore,
  SessionSubscription,
} from "../domain/sessions.ts";
import { buildOrderEventTopic, parseTopic, topicMatchesFilter } from "../domain/topics.ts";
import { type AckTracker, createAckTracker } from "./acknowledgements.ts";
import { planReplay, type ReplayPlan, readLeadingSeq } from "./replay-plan.ts";

/** Events read from the log per query while replaying. */
const PAGE = 1_000;
/** Messages one replay keeps unacknowledged at most (packet ids are 16 bits; a window keeps them apart). */
export const REPLAY_WINDOW = 1_000;
/** Live messages held back during a replay; beyond it they are dropped and the log is read again. */
const HELD_MAX = 10_000;
/** A replay's packets leave in writes of about this many bytes. */
const WRITE_BYTES = 64 * 1024;

const SESSION = Symbol("brewcast.session");

interface Packet {
  cmd?: string;
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup?: boolean;
  messageId?: number;
  brokerId?: string;
}

/** The parts of an Aedes 1.2 client a replay uses: its connection and its packet id counter. */
interface Client {
  id: string;
  conn?: Writable;
  _nextId?: number;
  [SESSION]?: LiveSession;
}

/** What Aedes would use without us (memory or Redis): retained messages, wills, inbound QoS 2. */
export interface DelegatePersistence {
  setup(broker: unknown): Promise<void>;
  storeRetained(packet: unknown): Promise<void>;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
  incomingStorePacket(client: unknown, packet: unknown): Promise<void>;
  incomingGetPacket(client: unknown, packet: unknown): Promise<unknown>;
  incomingDelPacket(client: unknown, packet: unknown): Promise<void>;
  cleanIncoming?(client: unknown): Promise<void>;
  putWill(client: unknown, packet: unknown): Promise<void>;
  getWill(client: unknown): Promise<unknown>;
  delWill(client: unknown): Promise<unknown>;
  streamWill(brokers?: unknown): Readable;
  destroy(): Promise<void>;
}

interface Held {
  packets: Packet[];
  /** Bumped whenever held packets had to be dropped: the log is read again. */
  overflows: number;
}

interface LiveSession {
  clientId: string;
  partnerId: string | null;
  tracker: AckTracker;
  subscriptions: SessionSubscription[];
  plan: ReplayPlan | undefined;
  /** The stored session being resumed: what was in flight when it was written. */
  resume: { inflight: Record<string, number>; sentSeq: number; pubrels: number[] } | undefined;
  /** Set while a replay runs: live messages are held here. */
  held: Held | undefined;
  /** After a replay: live events up to this seq were sent by the replay already. */
  sentByReplay: number | undefined;
  dirty: boolean;
  closed: boolean;
  /** The session was deleted (a clean login took the id): nothing of it is written. */
  discarded: boolean;
  /** Resumes a waiting replay (an acknowledgement, a write, a close). */
  wake: (() => void) | undefined;
}

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
}

const isOrderEventTopic = (topic: string): boolean =>
  topic.endsWith("/orders/created") || topic.endsWith("/orders/status_changed");

const progressOf = (live: LiveSession): SessionProgress => ({
  clientId: live.clientId,
  position: live.tracker.position,
  sentSeq: live.tracker.sentSeq,
  inflight: live.tracker.inflightIds(),
  pubrels: live.tracker.pubrels(),
});

/** The next packet id of an Aedes client, taken as Aedes takes it (lib/qos-packet.js). */
const takePacketId = (client: Client): number => {
  const id = client._nextId ?? 1;
  client._nextId = id >= 65535 ? 1 : id + 1;
  return id;
};

/**
 * Packets for one connection, written a batch at a time. `write` is synchronous, so whatever
 * Aedes writes after it (a live delivery once the replay is done) follows it on the stream.
 */
const createBatchWriter = (conn: Writable, drainTimeoutMs: number) => {
  let chunks: Buffer[] = [];
  let bytes = 0;
  let blocked = false;
  const write = (): void => {
    if (bytes === 0) return;
    const out = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes);
    chunks = [];
    bytes = 0;
    if (!conn.destroyed && !conn.write(out)) blocked = true;
  };
  return {
    add(packet: Record<string, unknown>): void {
      const frame = mqttPacket.generate(packet as unknown as mqttPacket.Packet);
      chunks.push(frame);
      bytes += frame.length;
    },
    get full(): boolean {
      return bytes >= WRITE_BYTES;
    },
    write,
    /** Writes what is batched, then waits while the connection is full (a stuck reader is dropped). */
    async flush(): Promise<void> {
      write();
      if (!blocked || conn.destroyed) return;
      blocked = false;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          conn.off("drain", done);
          conn.off("close", done);
          resolve();
        };
        const timer = setTimeout(() => {
          conn.destroy(new Error("drain timeout"));
          done();
        }, drainTimeoutMs);
        conn.once("drain", done);
        conn.once("close", done);
      });
    },
  };
};

export const createSessionPersistence = (options: SessionPersistenceOptions) => {
  const { store, log, delegate } = options;
  const live = new Set<LiveSession>();
  const byId = new Map<string, LiveSession>();
  /** Progress being written at disconnect, by client id: a quick reconnect reads after it. */
  const flushing = new Map<string, Promise<void>>();
  const stats: SessionStats = {
    expired: 0,
    ended: { past_retention: 0, log_reset: 0 },
    replayed: 0,
    heldDropped: 0,
    connected: 0,
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

  const wait = (session: LiveSession): Promise<void> =>
    new Promise((resolve) => {
      session.wake = () => {
        session.wake = undefined;
        resolve();
      };
    });

  /** Waits until the replay may hand over another QoS 1/2 message; false once the client is gone. */
  const room = async (session: LiveSession): Promise<boolean> => {
    while (!session.closed && session.tracker.inFlight >= REPLAY_WINDOW) await wait(session);
    return !session.closed;
  };

  /** Sends a resumed session what it missed, then opens the gate to the live stream. */
  const replay = async (client: Client, session: LiveSession): Promise<void> => {
    const resume = session.resume!;
    const held = session.held!;
    const out = createBatchWriter(client.conn!, options.drainTimeoutMs);
    // Sent before: in flight when the session was last written, or after the last of those up to
    // what had been written (sent later, or acknowledged out of order). An event below the last
    // in-flight one that is not among them was never sent (it went by before the subscription).
    const lastInFlight = Math.max(0, ...Object.keys(resume.inflight).map(Number));
    const wasSent = (seq: number) =>
      seq <= resume.sentSeq && (resume.inflight[seq] !== undefined || seq > lastInFlight);
    /** Batches one PUBLISH; false once the client is gone. */
    const publish = async (
      topic: string,
      payload: Buffer,
      qos: 0 | 1 | 2,
      flags: { seq?: number; retain?: boolean; dup?: boolean; messageId?: number | undefined } = {},
    ): Promise<boolean> => {
      if (qos > 0 && session.tracker.inFlight >= REPLAY_WINDOW) {
        // The client acknowledges what it has been sent: send it, then wait for room.
        await out.flush();
        if (!(await room(session))) return false;
      }
      if (session.closed) return false;
      const messageId = qos === 0 ? undefined : (flags.messageId ?? takePacketId(client));
      if (messageId !== undefined) session.tracker.sent(messageId, flags.seq, flags.seq);
      out.add({
        cmd: "publish",
        topic,
        payload,
        qos,
        retain: flags.retain ?? false,
        dup: flags.dup ?? false,
        messageId,
      });
      if (out.full) await out.flush();
      return !session.closed;
    };

    for (const messageId of resume.pubrels) out.add({ cmd: "pubrel", messageId });
    const plan = session.plan;
    const partnerId = session.partnerId;
    // Device statuses are state: the current one of each device followed, not what changed meanwhile.
    if (plan && plan.statusFilters.length > 0) {
      const current = delegate.createRetainedStreamCombi(plan.statusFilters.map((sub) => sub.topic));
      for await (const retained of current as AsyncIterable<Packet>) {
        if (parseTopic(retained.topic)?.type !== "device_status" || retained.payload.length === 0) continue;
        let qos: 0 | 1 | 2 = 0;
        for (const sub of plan.statusFilters) {
          if (sub.qos > qos && topicMatchesFilter(sub.topic, retained.topic)) qos = sub.qos;
        }
        if (!(await publish(retained.topic, retained.payload, qos))) return;
      }
    }
    let lastSent = session.tracker.position;
    // Where the ladder stops pushing a partner's events (poll_only), a replay pushes none either:
    // the client reads them from GET /v1/events, as it does for live ones.
    const pushing = partnerId !== null && pushesEvents((await log.partnerState(partnerId)) ?? "normal");
    // A partner has few shops and two kinds: each topic and its QoS is worked out once.
    const routes = new Map<string, { topic: string; qos: 0 | 1 | 2 }>();
    const routeOf = (event: LoggedEvent) => {
      const key = `${event.shopId}/${event.type}`;
      let route = routes.get(key);
      if (route === undefined) {
        const topic = buildOrderEventTopic(partnerId!, event.shopId, EVENT_KIND[event.type]);
        route = { topic, qos: plan!.qosFor(topic) };
        routes.set(key, route);
      }
      return route;
    };
    const read = (after: number) => ({
      overflows: held.overflows,
      events: log.read(partnerId!, after, PAGE, plan!.shopId),
    });
    for (;;) {
      if (plan?.replaysEvents && partnerId !== null && pushing) {
        await out.flush();
        let page = read(lastSent);
        for (;;) {
          const events = await page.events;
          const { overflows } = page;
          // The next page is read while this one is written.
          if (events.length === PAGE) page = read(events.at(-1)!.seq);
          for (const event of events) {
            const { topic, qos } = routeOf(event);
            lastSent = event.seq;
            if (qos === 0) continue;
            stats.replayed++;
            const sent = await publish(topic, Buffer.from(event.json), qos, {
              seq: event.seq,
              dup: wasSent(event.seq),
              messageId: resume.inflight[event.seq],
            });
            if (!sent) return;
          }
          await out.flush();
          // Caught up with the log as of a read that began after the last overflow: every later
          // event reaches the hold, in order.
          if (events.length < PAGE && held.overflows === overflows) break;
          if (events.length < PAGE) page = read(lastSent);
        }
      }
      const overflows = held.overflows;
      for (let packet = held.packets.shift(); packet !== undefined; packet = held.packets.shift()) {
        let seq: number | undefined;
        if (partnerId !== null && isOrderEventTopic(packet.topic)) {
          seq = readLeadingSeq(packet.payload);
          if (seq !== undefined && seq <= lastSent) continue;
          if (seq !== undefined) lastSent = seq;
        }
        if (!(await publish(packet.topic, packet.payload, packet.qos, { seq, retain: packet.retain })))
          return;
      }
      // Held messages were dropped meanwhile: their events are in the log, read it again.
      if (held.overflows !== overflows) continue;
      // The last batch leaves synchronously and the gate opens in the same turn: what Aedes writes
      // from now on follows it on the stream.
      out.write();
      session.held = undefined;
      session.sentByReplay = lastSent;
      return;
    }
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
    storeRetained: (packet: unknown) => delegate.storeRetained(packet),
    createRetainedStream: (pattern: string) => delegate.createRetainedStream(pattern),
    createRetainedStreamCombi: (patterns: string[]) => delegate.createRetainedStreamCombi(patterns),
    incomingStorePacket: (client: unknown, packet: unknown) => delegate.incomingStorePacket(client, packet),
    incomingGetPacket: (client: unknown, packet: unknown) => delegate.incomingGetPacket(client, packet),
    incomingDelPacket: (client: unknown, packet: unknown) => delegate.incomingDelPacket(client, packet),
    cleanIncoming: async (client: unknown) => delegate.cleanIncoming?.(client),
    putWill: (client: unknown, packet: unknown) => delegate.putWill(client, packet),
    getWill: (client: unknown) => delegate.getWill(client),
    delWill: (client: unknown) => delegate.delWill(client),
    streamWill: (brokers?: unknown) => delegate.streamWill(brokers),

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
      if (session.tracker.pubrels().includes(messageId)) session.tracker.completed(messageId);
      else session.tracker.acked(messageId);
      session.dirty = true;
      session.wake?.();
      return undefined;
    },

    outgoingStream(client: Client): Readable {
      const session = client[SESSION];
      // Nothing is queued for Aedes to send. A resumed session's replay starts now (after its
      // CONNACK) and writes to the connection itself; until it is done, live messages are held.
      if (session?.held !== undefined && session.resume !== undefined && client.conn) {
        replay(client, session).catch((error) => {
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
    forward<
      P extends {
        topic: string;
        payload?: Buffer | string;
        qos: number;
        retain?: boolean;
        brokerId?: string;
      },
    >(client: object, packet: P): P | null {
      const session = (client as Client)[SESSION];
      if (session === undefined) return packet;
      const held = session.held;
      if (held !== undefined) {
        if (held.packets.length >= HELD_MAX) {
          stats.heldDropped += held.packets.length;
          held.packets.length = 0;
          held.overflows++;
        }
        held.packets.push({
          topic: packet.topic,
          payload:
            typeof packet.payload === "string"
              ? Buffer.from(packet.payload)
              : (packet.payload ?? Buffer.alloc(0)),
          qos: packet.qos as 0 | 1 | 2,
          retain: packet.retain ?? false,
        });
        session.wake?.();
        return null;
      }
      if (session.sentByReplay !== undefined && isOrderEventTopic(packet.topic)) {
        const seq = packet.payload === undefined ? undefined : readLeadingSeq(packet.payload);
        if (seq !== undefined && seq <= session.sentByReplay) return null;
        session.sentByReplay = undefined;
      }
      return packet;
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
      const written = flush([session]).finally(() => {
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
