/**
 * Retention: events older than the configured days are removed per partner
 * as a seq prefix, never past the bridge's durable cursor nor past the lowest
 * position of a deliverable (active, throttled or poll_only) webhook endpoint, and the partner remembers how far it was pruned, so a
 * cursor behind that point gets CURSOR_EXPIRED instead of a silent gap.
 * Idempotency keys are kept for a day.
 */
import type { Db } from "./db.ts";

export const IDEMPOTENCY_KEY_TTL_HOURS = 24;

export interface PruneResult {
  eventsDeleted: number;
  idempotencyKeysDeleted: number;
}

export const pruneHistory = async (db: Db, retentionDays: number, now = new Date()): Promise<PruneResult> => {
  const cutoff = new Date(now.getTime() - retentionDays * 86_400_000);
  return db.transaction(async (tx) => {
    const deleted = await tx.query<{ n: number }>(
      `WITH cut AS (
         -- Never past what the bridge has published: an event still owed to MQTT subscribers stays;
         -- nor past the position of an endpoint that is sent events: an event still owed to it stays.
         SELECT e.partner_id, max(e.seq) AS through FROM order_events e
         JOIN bridge_cursors c ON c.partner_id = e.partner_id AND e.seq <= c.published_seq
         WHERE e.occurred_at < $1
           AND e.seq <= coalesce((
             SELECT min(wp.position) FROM webhook_endpoints we
             JOIN webhook_positions wp ON wp.endpoint_id = we.id
             WHERE we.partner_id = e.partner_id AND we.status IN ('active', 'throttled', 'poll_only')
           ), e.seq)
         GROUP BY e.partner_id
       ), moved AS (
         UPDATE partners p SET pruned_through_seq = greatest(p.pruned_through_seq, cut.through)
         FROM cut WHERE p.id = cut.partner_id RETURNING p.id
       ), del AS (
         DELETE FROM order_events e USING cut WHERE e.partner_id = cut.partner_id AND e.seq <= cut.through RETURNING 1
       )
       SELECT count(*)::int AS n FROM del`,
      [cutoff],
    );
    const keys = await tx.query<{ n: number }>(
      `WITH del AS (DELETE FROM idempotency_keys WHERE created_at < $1 RETURNING 1) SELECT count(*)::int AS n FROM del`,
      [new Date(now.getTime() - IDEMPOTENCY_KEY_TTL_HOURS * 3_600_000)],
    );
    return { eventsDeleted: deleted[0]?.n ?? 0, idempotencyKeysDeleted: keys[0]?.n ?? 0 };
  });
};
