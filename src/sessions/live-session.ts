/**
 * A persistent session while its client is connected here: the packets and
 * the Aedes client as this module sees them, and the session's state.
 *
 * May import: domain and node.
 */
import type { Writable } from "node:stream";
import type { SessionSubscription } from "../domain/sessions.ts";
import type { AckTracker } from "./acknowledgements.ts";
import type { ReplayPlan } from "./replay-plan.ts";

/**
 * Messages one replay keeps unacknowledged at most (packet ids are 16 bits; a window keeps them
 * apart). 4,000 (about 2 MiB of events): on a busy machine a window of 1,000 spent half a replay
 * waiting for PUBACKs of a client that was merely not scheduled yet.
 */
export const REPLAY_WINDOW = 4_000;

export const SESSION = Symbol("brewcast.session");

export interface Packet {
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
export interface Client {
  id: string;
  conn?: Writable;
  _nextId?: number;
  [SESSION]?: LiveSession;
}

export interface Held {
  packets: Packet[];
  /** Bumped whenever held packets had to be dropped: the log is read again. */
  overflows: number;
}

export interface LiveSession {
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

export const isOrderEventTopic = (topic: string): boolean =>
  topic.endsWith("/orders/created") || topic.endsWith("/orders/status_changed");

export const wait = (session: LiveSession): Promise<void> =>
  new Promise((resolve) => {
    session.wake = () => {
      session.wake = undefined;
      resolve();
    };
  });

/** Waits until the replay may hand over another QoS 1/2 message; false once the client is gone. */
export const room = async (session: LiveSession): Promise<boolean> => {
  while (!session.closed && session.tracker.inFlight >= REPLAY_WINDOW) await wait(session);
  return !session.closed;
};
