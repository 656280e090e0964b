/**
 * The log's recent events as JSON (UTF-8 bytes), kept in memory by this process: those it
 * wrote, those its delivery core read to publish, those a page or a replay read.
 *
 * An event never changes once committed: the log is append-only and a seq is never reused
 * (retention only removes events from the bottom, and a reader behind it is refused before
 * anything is looked up here). So a committed event can be served again from memory, byte for
 * byte what Postgres would give (`toOrderEventJson` builds both). What must still come from the
 * database is what moves: a page's head and pruned point (`event-log.ts`). Only committed events
 * are put: a writer puts its event once its transaction committed.
 *
 * Bounded in bytes, emptied oldest first, except that an event served since it was put gets a
 * second round (CLOCK); keyed by the log's epoch, so a restored log (a new epoch) never meets an
 * old one's events.
 *
 * Imports domain types only.
 */

import type { LoggedEvent } from "../domain/events.ts";

export interface EventTextCacheStats {
  events: number;
  bytes: number;
}

/** Per entry beside the text: the Map slot, the objects, the queue slot (an estimate; V8 does not say). */
const ENTRY_OVERHEAD_BYTES = 128;

interface Slot {
  event: LoggedEvent;
  bytes: number;
  /** Served since it was last passed at the front: it gets one more round (a CLOCK, near LRU at no cost per hit). */
  used: boolean;
  partner: Map<number, Slot>;
}

/** A partner's kept events, by seq; `get` marks an event as served. */
export interface KeptEvents {
  has(seq: number): boolean;
  get(seq: number): LoggedEvent | undefined;
}

export class EventTextCache {
  readonly #maxBytes: number;
  #epoch: string | undefined;
  #byPartner = new Map<string, Map<number, Slot>>();
  /** What was put, oldest first, to empty from the front; `#front` is the front. */
  #queue: Slot[] = [];
  #front = 0;
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  get stats(): EventTextCacheStats {
    return { events: this.#queue.length - this.#front, bytes: this.#bytes };
  }

  /** The partner's events in the epoch, or undefined when none are kept (or the epoch moved on). */
  events(epoch: string, partnerId: string): KeptEvents | undefined {
    if (epoch !== this.#epoch) return undefined;
    const slots = this.#byPartner.get(partnerId);
    if (!slots) return undefined;
    return {
      has: (seq) => slots.has(seq),
      get(seq) {
        const slot = slots.get(seq);
        if (!slot) return undefined;
        slot.used = true;
        return slot.event;
      },
    };
  }

  /** Keeps committed events of one partner (any order, any gaps); an event already kept is left. */
  put(epoch: string, partnerId: string, events: readonly LoggedEvent[]): void {
    if (this.#maxBytes <= 0 || events.length === 0) return;
    if (epoch !== this.#epoch) this.#clear(epoch);
    let partner = this.#byPartner.get(partnerId);
    if (!partner) {
      partner = new Map();
      this.#byPartner.set(partnerId, partner);
    }
    for (const event of events) {
      if (partner.has(event.seq)) continue;
      const slot: Slot = { event, bytes: event.json.length + ENTRY_OVERHEAD_BYTES, used: false, partner };
      partner.set(event.seq, slot);
      this.#queue.push(slot);
      this.#bytes += slot.bytes;
    }
    this.#trim();
  }

  #trim(): void {
    while (this.#bytes > this.#maxBytes && this.#front < this.#queue.length) {
      const slot = this.#queue[this.#front]!;
      this.#front++;
      if (slot.used) {
        slot.used = false;
        this.#queue.push(slot);
        continue;
      }
      slot.partner.delete(slot.event.seq);
      this.#bytes -= slot.bytes;
    }
    // Empty partners' maps stay: few, and a partner read once is likely read again.
    if (this.#front > 4_096 && this.#front * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#front);
      this.#front = 0;
    }
  }

  #clear(epoch: string): void {
    this.#epoch = epoch;
    this.#byPartner = new Map();
    this.#queue = [];
    this.#front = 0;
    this.#bytes = 0;
  }
}
