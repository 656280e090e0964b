/**
 * A partner's position in the log as far as its channel accepted it: the
 * partner's cursor and its shops' cursors, moved in place as batches are
 * accepted, and what of that is not yet announced (the channel's cursor
 * messages, coalesced) or not yet committed (the durable cursor, see
 * cursor-commits.ts). It only ever moves forward past accepted events.
 *
 * Imports domain types only.
 */
import type { CursorCommit, PartnerCursors, ScopeCursor } from "../domain/delivery.ts";
import type { OrderEvent } from "../domain/events.ts";

export interface PartnerPosition {
  /** Replaced (not changed) when the partner's state changes; `published` is never changed in place. */
  cursors: PartnerCursors;
  /** Every event of `events` (in seq order, continuing `cursors.published`) was accepted. */
  accept(events: readonly OrderEvent[]): void;
  /** When the shops' cursors were last announced (ms since the epoch; 0: never). */
  readonly announcedAt: number;
  /** Shops whose cursor moved since the last announcement. */
  readonly unannounced: number;
  /** The shops to announce now; they count as announced from `now`. */
  takeUnannounced(now: number): string[];
  /** An announcement failed: its shops are due again. */
  restoreUnannounced(shopIds: readonly string[]): void;
  /** What the durable cursors lack, if anything; taken, so a commit in flight is not repeated. */
  takeCommit(): CursorCommit | undefined;
  /** `commit` is durable. */
  committed(commit: CursorCommit): void;
  /** `commit` failed: its shops are due again (unless a later cursor of theirs is). */
  restoreCommit(commit: CursorCommit): void;
}

export const createPartnerPosition = (initial: PartnerCursors): PartnerPosition => {
  const unannounced = new Set<string>();
  let announcedAt = 0;
  let committedSeq = initial.published.seq;
  let uncommittedShops = new Map<string, ScopeCursor>();
  const position: PartnerPosition = {
    cursors: initial,
    accept(events) {
      const cursors = position.cursors;
      const last = events[events.length - 1];
      if (last === undefined) return;
      // In place: a batch usually holds one event, and copying the partner's cursors and shop map
      // for each one was the batch's largest allocation.
      for (const event of events) {
        const shopCursor: ScopeCursor = { seq: event.seq, occurredAt: event.occurred_at };
        cursors.shops.set(event.shop_id, shopCursor);
        unannounced.add(event.shop_id);
        uncommittedShops.set(event.shop_id, shopCursor);
      }
      cursors.headSeq = Math.max(cursors.headSeq, last.seq);
      // A new object, never changed in place: a commit in flight holds the one it is committing.
      cursors.published = { seq: last.seq, occurredAt: last.occurred_at };
    },
    get announcedAt() {
      return announcedAt;
    },
    get unannounced() {
      return unannounced.size;
    },
    takeUnannounced(now) {
      const shopIds = [...unannounced];
      unannounced.clear();
      announcedAt = now;
      return shopIds;
    },
    restoreUnannounced(shopIds) {
      for (const shopId of shopIds) unannounced.add(shopId);
    },
    takeCommit() {
      const { partnerId, published } = position.cursors;
      if (committedSeq >= published.seq && uncommittedShops.size === 0) return undefined;
      const commit: CursorCommit = { partnerId, partner: published, shops: uncommittedShops };
      uncommittedShops = new Map();
      return commit;
    },
    committed(commit) {
      committedSeq = Math.max(committedSeq, commit.partner.seq);
    },
    restoreCommit(commit) {
      for (const [shopId, cursor] of commit.shops) {
        if (!uncommittedShops.has(shopId)) uncommittedShops.set(shopId, cursor);
      }
    },
  };
  return position;
};
