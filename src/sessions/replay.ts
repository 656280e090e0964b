/**
 * The replay of a resumed session (see session-persistence.ts for what is
 * sent and in which order).
 *
 * It writes to the client's connection itself, a batch of packets per
 * write, instead of handing Aedes one packet per turn of the event loop
 * through `outgoingStream` (its `emptyQueue` waits an immediate after each):
 * that path was a third of a replay's time. The next page of the log is
 * read while one is written, and events come from the store as JSON text,
 * never parsed to be stringified again.
 *
 * May import: domain and node.
 */
import { setImmediate } from "node:timers/promises";
import { EVENT_KIND, type LoggedEvent } from "../domain/events.ts";
import { pushesEvents } from "../domain/partners.ts";
import type { SessionLog } from "../domain/sessions.ts";
import { buildOrderEventTopic, parseTopic, topicMatchesFilter } from "../domain/topics.ts";
import { createFrameBatch, topicBytes } from "./frame-batch.ts";
import {
  type Client,
  isOrderEventTopic,
  type LiveSession,
  type Packet,
  REPLAY_WINDOW,
  room,
} from "./live-session.ts";
import { readLeadingSeq } from "./replay-plan.ts";

/** Events read from the log per query while replaying. */
const PAGE = 2_000;

export interface ReplayDeps {
  log: SessionLog;
  /** How long a full connection may take to drain before its client is dropped. */
  drainTimeoutMs: number;
  stats: { replayed: number };
  /** The retained messages on these filters (the delegate's). */
  retained(filters: string[]): AsyncIterable<Packet>;
}

/**
 * The next packet id of an Aedes client, taken as Aedes takes it (aedes 1.2.0 lib/qos-packet.js
 * increments `client._nextId`, wrapping at 65535): the replay writes its packets itself, and a
 * live delivery Aedes writes after it must not reuse an id still in flight. Pinned by
 * test/sessions/bulk-acknowledgements.test.ts, which fails if Aedes stops keeping it there.
 */
export const takePacketId = (client: Client): number => {
  const id = client._nextId ?? 1;
  client._nextId = id >= 65535 ? 1 : id + 1;
  return id;
};

/** Sends a resumed session what it missed, then opens the gate to the live stream. */
export const replay = async (client: Client, session: LiveSession, deps: ReplayDeps): Promise<void> => {
  const { log, stats } = deps;
  const resume = session.resume!;
  const held = session.held!;
  const out = createFrameBatch(client.conn!, deps.drainTimeoutMs);
  // Sent before: in flight when the session was last written, or after the last of those up to
  // what had been written (sent later, or acknowledged out of order). An event below the last
  // in-flight one that is not among them was never sent (it went by before the subscription).
  const lastInFlight = Math.max(0, ...Object.keys(resume.inflight).map(Number));
  const wasSent = (seq: number) =>
    seq <= resume.sentSeq && (resume.inflight[seq] !== undefined || seq > lastInFlight);
  /** Waits for room in the replay window (after writing what is batched); false once the client is gone. */
  const makeRoom = async (): Promise<boolean> => {
    // The client acknowledges what it has been sent: send it, then wait for room.
    await out.flush();
    return room(session);
  };
  /** Batches one PUBLISH that is not an event of the log; false once the client is gone. */
  const publish = async (
    topic: string,
    payload: Buffer,
    qos: 0 | 1 | 2,
    flags: { seq?: number | undefined; retain?: boolean } = {},
  ): Promise<boolean> => {
    if (qos > 0 && session.tracker.inFlight >= REPLAY_WINDOW && !(await makeRoom())) return false;
    if (session.closed) return false;
    const messageId = qos === 0 ? undefined : takePacketId(client);
    if (messageId !== undefined) session.tracker.sent(messageId, flags.seq, flags.seq);
    out.publish({
      topic: topicBytes(topic),
      payload,
      qos,
      dup: false,
      retain: flags.retain ?? false,
      messageId,
    });
    if (out.full) await out.flush();
    return !session.closed;
  };

  for (const messageId of resume.pubrels) out.pubrel(messageId);
  const plan = session.plan;
  const partnerId = session.partnerId;
  // Device statuses are state: the current one of each device followed, not what changed meanwhile.
  if (plan && plan.statusFilters.length > 0) {
    for await (const retained of deps.retained(plan.statusFilters.map((sub) => sub.topic))) {
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
  const routes = new Map<string, { topic: Buffer; qos: 0 | 1 | 2 }>();
  const routeOf = (event: LoggedEvent) => {
    const key = `${event.shopId}/${event.type}`;
    let route = routes.get(key);
    if (route === undefined) {
      const topic = buildOrderEventTopic(partnerId!, event.shopId, EVENT_KIND[event.type]);
      route = { topic: topicBytes(topic), qos: plan!.qosFor(topic) };
      routes.set(key, route);
    }
    return route;
  };
  /** The page of the log after `after`, its read begun now. */
  const read = (after: number) => {
    const events = log.read(partnerId!, after, PAGE, plan!.shopId);
    // A page read ahead may be dropped unread: its failure is then nobody's.
    events.catch(() => undefined);
    return { after, overflows: held.overflows, events };
  };
  for (;;) {
    if (plan?.replaysEvents && partnerId !== null && pushing) {
      await out.flush();
      let page = read(lastSent);
      let ahead: ReturnType<typeof read> | undefined;
      for (;;) {
        const events = await page.events;
        const { overflows } = page;
        if (events.length === PAGE) {
          // The next page is read while this one is written. Across all shops a partner's seqs have
          // no gaps, so the page after that one is begun too, from where it should start; it is used
          // only if the next page does end there.
          const last = events.at(-1)!.seq;
          page = ahead?.after === last ? ahead : read(last);
          ahead = plan!.shopId === undefined ? read(last + PAGE) : undefined;
        }
        for (const event of events) {
          const { topic, qos } = routeOf(event);
          lastSent = event.seq;
          if (qos === 0) continue;
          // The hot path stays synchronous: it waits only when the window is full.
          if (session.tracker.inFlight >= REPLAY_WINDOW && !(await makeRoom())) return;
          if (session.closed) return;
          stats.replayed++;
          const messageId = resume.inflight[event.seq] ?? takePacketId(client);
          session.tracker.sent(messageId, event.seq, event.seq);
          out.publish({ topic, payload: event.json, qos, dup: wasSent(event.seq), retain: false, messageId });
          if (out.full) {
            await out.flush();
            // A turn of the event loop per write: the next page is read off its socket (and parsed)
            // and PUBACKs are taken while this one is written, not only once it is done.
            await setImmediate();
            if (session.closed) return;
          }
        }
        await out.flush();
        // Caught up with the log as of a read that began after the last overflow: every later
        // event reaches the hold, in order.
        if (events.length < PAGE && held.overflows === overflows) break;
        if (events.length < PAGE) {
          page = read(lastSent);
          ahead = undefined;
        }
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
      if (!(await publish(packet.topic, packet.payload, packet.qos, { seq, retain: packet.retain }))) return;
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
