/**
 * The handover: events committed in this process (or carried by a doorbell
 * ring, or read ahead for one), kept by partner and seq so that a partner's
 * next batch is taken from here instead of read back from the log. It only
 * saves a read: `take` returns only events that continue the given seq
 * without a gap, and whatever is missing is read from the log. Bounded per
 * partner and in all; past either bound events are simply not kept.
 *
 * Imports domain types only.
 */
import type { OrderEvent } from "../domain/events.ts";

export interface Handover {
  /** Keeps `event` if it is after `deliveredSeq`, not kept yet, and both bounds allow. */
  keep(event: OrderEvent, deliveredSeq: number): void;
  /** The kept events of a partner after `afterSeq` without a gap, up to `limit`; forgets those and older ones. */
  take(partnerId: string, afterSeq: number, limit: number): OrderEvent[];
  /** Events kept for a partner. */
  held(partnerId: string): number;
  /** Forgets everything (a new term). */
  clear(): void;
}

export const createHandover = (perPartnerMax: number, totalMax: number): Handover => {
  const byPartner = new Map<string, Map<number, OrderEvent>>();
  let total = 0;
  return {
    keep(event, deliveredSeq) {
      if (event.seq <= deliveredSeq || total >= totalMax) return;
      let kept = byPartner.get(event.partner_id);
      if (kept === undefined) {
        kept = new Map();
        byPartner.set(event.partner_id, kept);
      }
      if (kept.size >= perPartnerMax || kept.has(event.seq)) return;
      kept.set(event.seq, event);
      total++;
    },
    take(partnerId, afterSeq, limit) {
      const kept = byPartner.get(partnerId);
      if (kept === undefined || kept.size === 0) return [];
      const batch: OrderEvent[] = [];
      for (let seq = afterSeq + 1; batch.length < limit; seq++) {
        const event = kept.get(seq);
        if (!event) break;
        batch.push(event);
      }
      const upTo = afterSeq + batch.length;
      for (const seq of kept.keys()) {
        if (seq <= upTo) {
          kept.delete(seq);
          total = Math.max(0, total - 1);
        }
      }
      return batch;
    },
    held(partnerId) {
      return byPartner.get(partnerId)?.size ?? 0;
    },
    clear() {
      byPartner.clear();
      total = 0;
    },
  };
};
