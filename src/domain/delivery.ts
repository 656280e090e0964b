/**
 * The ports of the delivery core (src/delivery/): what it needs from the
 * event log and from a leader lock, and the positions it keeps. Types only.
 *
 * They live in domain, not in src/delivery/, on purpose: store implements
 * them (src/store/delivery-log.ts, leader-lock.ts, doorbell.ts) and store may
 * import domain only, never a folder beside it. The delivery core and the
 * composition root import them from here as well.
 */
import type { OrderEvent } from "./events.ts";
import type { PartnerState } from "./partners.ts";

/** A position in the log, for a partner or one of its shops. */
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

/** Writers in other processes committed events (a NOTIFY: the doorbell). */
export interface DoorbellRing {
  /** The partners with new events, or all of them (a missed or malformed ring). */
  partnerIds: string[] | "all";
  /** Committed events carried by the ring from a trusted writer (often all of them, maybe none). */
  events: OrderEvent[];
}

/** The event log as the delivery core reads it, with its durable positions. */
export interface DeliveryLog {
  readonly epoch: string;
  /** Every partner, its head and its durable cursors (the leader's starting point and the watermark's list). */
  loadPartners(): Promise<PartnerCursors[]>;
  /** Partners whose head is ahead of their durable cursor (committed events not yet delivered). */
  partnersWithBacklog(): Promise<string[]>;
  /** Up to `limitEach` events of each partner after its `afterSeq`: partners in the order given, each in seq order. */
  readAfter(positions: { partnerId: string; afterSeq: number }[], limitEach: number): Promise<OrderEvent[]>;
  /** Moves the durable cursors of these partners and their shops forward (never back), all at once. */
  commitCursors(commits: CursorCommit[]): Promise<void>;
  /** Calls `onRing` when writers ring the doorbell; returns a function that stops listening. */
  onDoorbell(onRing: (ring: DoorbellRing) => void): Promise<() => Promise<void>>;
}

export interface LeaderLock {
  /** Tries once; true when this process now holds the lock. */
  tryAcquire(): Promise<boolean>;
  /** Called when a held lock is lost (its connection died): stop delivering at once. */
  onLost(handler: () => void): void;
  release(): Promise<void>;
}
