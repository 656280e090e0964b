/**
 * Each partner's delivery status as the database sees it: head, what the
 * bridge has published, and how old the oldest unpublished event is. Read
 * by the partner monitor and by /metrics, in any process.
 */
import type { DeliveryStatus } from "../domain/ladder.ts";
import type { PartnerState } from "../domain/partners.ts";
import type { Db } from "./db.ts";

/** Every partner's status, or one partner's when `partnerId` is given. */
export const readDeliveryStatus = async (
  db: Db,
  partnerId?: string,
  now = new Date(),
): Promise<DeliveryStatus[]> => {
  const rows = await db.query<{
    id: string;
    state: PartnerState;
    state_pinned: boolean;
    head_seq: number;
    published: number;
    oldest: Date | null;
  }>(
    `SELECT p.id, p.state, p.state_pinned, p.head_seq, coalesce(c.published_seq, 0) AS published, e.occurred_at AS oldest
     FROM partners p
     LEFT JOIN bridge_cursors c ON c.partner_id = p.id
     LEFT JOIN order_events e ON e.partner_id = p.id AND e.seq = coalesce(c.published_seq, 0) + 1
     WHERE $1::text IS NULL OR p.id = $1
     ORDER BY p.id`,
    [partnerId ?? null],
  );
  return rows.map((row) => ({
    partnerId: row.id,
    state: row.state,
    pinned: row.state_pinned,
    headSeq: row.head_seq,
    publishedSeq: row.published,
    lagEvents: Math.max(0, row.head_seq - row.published),
    lagSeconds: row.oldest ? Math.max(0, (now.getTime() - row.oldest.getTime()) / 1_000) : 0,
  }));
};
