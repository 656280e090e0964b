/**
 * What the bridge needs from the outside world, and nothing more: a reader
 * of the event log with durable cursors, a publisher, a leader lock. The
 * store and the broker (or an MQTT client) implement these; the bridge
 * imports only domain code.
 */
import type { OrderEvent } from "../domain/events.ts";
import type { PartnerState } from "../domain/partners.ts";

export interface ScopeCursor {
  seq: number;
  /** When the event at `seq` happened; null before the first event. */
  occurredAt: string | null;
}

export interface PartnerCursors {
  partnerId: string;
  headSeq: number;
  qos: 0 | 1 | 2;
  state: PartnerState;
  published: ScopeCursor;
  shops: Map<string, ScopeCursor>;
}

export interface CursorCommit {
  partnerId: string;
  partner: ScopeCursor;
  /** The shops whose cursor moved since the last commit. */
  shops: Map<string, ScopeCursor>;
}

/** Writers in other processes committed events. */
export interface DoorbellRing {
  /** The partners with new events, or all of them (a missed or malformed ring). */
  partnerIds: string[] | "all";
  /** Committed events carried by the ring from a trusted writer (often all of them, maybe none). */
  events: OrderEvent[];
}

export interface BridgeLog {
  readonly epoch: string;
  /** Every partner, its head and its durable cursors (the leader's starting point and the watermark's list). */
  loadPartners(): Promise<PartnerCursors[]>;
  /** Partners whose head is ahead of their durable cursor (committed events not yet published). */
  partnersWithBacklog(): Promise<string[]>;
  /** Up to `limitEach` events of each partner after its `afterSeq`: partners in the order given, each in seq order. */
  readAfter(positions: { partnerId: string; afterSeq: number }[], limitEach: number): Promise<OrderEvent[]>;
  /** Moves the durable cursors of these partners and their shops forward (never back), all at once. */
  commitCursors(commits: CursorCommit[]): Promise<void>;
  /** Calls `onRing` when writers ring the doorbell; returns a function that stops listening. */
  onDoorbell(onRing: (ring: DoorbellRing) => void): Promise<() => Promise<void>>;
}

export interface OutgoingMessage {
  topic: string;
  payload: string;
  qos: 0 | 1 | 2;
  retain: boolean;
}

export interface Publisher {
  /**
   * Resolves once the broker accepted the message (PUBACK/PUBCOMP, or Aedes's callback in-process).
   * Messages of one partner reach subscribers in the order `publish` was called, accepted or not
   * yet: the bridge hands a partner's next batch over while the last is in flight.
   */
  publish(message: OutgoingMessage): Promise<void>;
}

export interface LeaderLock {
  /** Tries once; true when this process now holds the lock. */
  tryAcquire(): Promise<boolean>;
  /** Called when a held lock is lost (its connection died): stop publishing at once. */
  onLost(handler: () => void): void;
  release(): Promise<void>;
}
