/**
 * The log's events as JSON (UTF-8 bytes), kept in memory once they were read.
 *
 * An event never changes once committed: the log is append-only and a seq is never reused
 * (retention only removes events from the bottom, and a reader behind it is refused before
 * anything is looked up here). So an event read once can be served again from memory, byte for
 * byte what Postgres would give. What must still come from the database is what moves: the
 * head and the pruned point of the scope, read at every page (`event-log.ts`).
 *
 * Bounded in bytes, emptied oldest-first; keyed by the log's epoch, so a restored log (a new
 * epoch) never meets an old one's events.
 *
 * Imports nothing of ours.
 */
/** An event kept: what a scope's filter needs, and its JSON as UTF-8, ready to be written (no encoding per page). */
export interface KeptEvent {
  seq: number;
  shopId: string;
  bytes: Buffer;
}

export interface EventTextCacheStats {
  events: number;
  bytes: number;
}

/** Per entry beside the text: the Map slot, the object, the queue slot (an estimate; V8 does not say). */
const ENTRY_OVERHEAD_BYTES = 96;

export class EventTextCache {
  readonly #maxBytes: number;
  #epoch: string | undefined;
  #byPartner = new Map<string, Map<number, KeptEvent>>();
  /** What was put, oldest first, to empty from the front; `#oldest` is the front. */
  #queue: Array<{ events: Map<number, KeptEvent>; seq: number; bytes: number }> = [];
  #oldest = 0;
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  get stats(): EventTextCacheStats {
    return { events: this.#queue.length - this.#oldest, bytes: this.#bytes };
  }

  /** The partner's events in the epoch, or undefined when none are kept (or the epoch moved on). */
  events(epoch: string, partnerId: string): ReadonlyMap<number, KeptEvent> | undefined {
    if (epoch !== this.#epoch) return undefined;
    return this.#byPartner.get(partnerId);
  }

  /** Keeps committed events of one partner (any order, any gaps); an event already kept is left. */
  put(epoch: string, partnerId: string, events: readonly KeptEvent[]): void {
    if (this.#maxBytes <= 0 || events.length === 0) return;
    if (epoch !== this.#epoch) this.#clear(epoch);
    let kept = this.#byPartner.get(partnerId);
    if (!kept) {
      kept = new Map();
      this.#byPartner.set(partnerId, kept);
    }
    for (const event of events) {
      if (kept.has(event.seq)) continue;
      const bytes = event.bytes.length + ENTRY_OVERHEAD_BYTES;
      kept.set(event.seq, event);
      this.#queue.push({ events: kept, seq: event.seq, bytes });
      this.#bytes += bytes;
    }
    this.#trim();
  }

  #trim(): void {
    while (this.#bytes > this.#maxBytes && this.#oldest < this.#queue.length) {
      const entry = this.#queue[this.#oldest]!;
      this.#oldest++;
      entry.events.delete(entry.seq);
      this.#bytes -= entry.bytes;
    }
    // Empty partners' maps stay: few, and a partner read once is likely read again.
    if (this.#oldest > 4_096 && this.#oldest * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#oldest);
      this.#oldest = 0;
    }
  }

  #clear(epoch: string): void {
    this.#epoch = epoch;
    this.#byPartner = new Map();
    this.#queue = [];
    this.#oldest = 0;
    this.#bytes = 0;
  }
}
