/**
 * Seeding an event log with SQL (generate_series) straight into the tables
 * of migration 0001, for the read and catch-up benches: a million events in
 * seconds instead of an hour of POSTs.
 *
 * Event s (1-based) of a partner belongs to order o = (s-1)/eventsPerOrder at
 * position (s-1)%eventsPerOrder (created, accepted, preparing, ready); order o
 * is in shop o % shops. So the previous event of the same shop is s-1 inside
 * an order, and the last event of order o-shops at its start. Snapshots are
 * ~300 bytes, order ids md5-derived version-4 shaped uuids.
 */
import type pg from "pg";

export interface SeedShape {
  shops: number;
  eventsPerOrder: number;
  /** Time between two events of a partner (a Postgres interval). */
  step: "1 second" | "1 millisecond";
}

/** INSERT of `$2` events for each partner id in `$1::text[]`, the first at `$3` + step. */
export const seedEventsSql = ({ shops, eventsPerOrder, step }: SeedShape) => `
INSERT INTO order_events (partner_id, seq, shop_id, order_id, type, occurred_at, prev_shop_seq, order_snapshot)
SELECT p.id, s.seq, sh.shop_id, o.order_id,
       CASE WHEN s.pos = 0 THEN 'order.created' ELSE 'order.status_changed' END,
       t.occurred_at,
       CASE WHEN s.pos > 0 THEN s.seq - 1 WHEN s.o >= ${shops} THEN s.seq - ${eventsPerOrder * shops - (eventsPerOrder - 1)} END,
       jsonb_build_object(
         'id', o.order_id, 'partner_id', p.id, 'shop_id', sh.shop_id,
         'status', (ARRAY['created', 'accepted', 'preparing', 'ready'])[s.pos + 1],
         'items', jsonb_build_array(
           jsonb_build_object('sku', (ARRAY['latte-grande', 'flat-white', 'cappuccino-tall', 'cold-brew', 'matcha-latte'])[s.o % 5 + 1], 'quantity', 1 + s.o % 3),
           jsonb_build_object('sku', 'butter-croissant', 'quantity', 1)),
         'created_at', to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
         'updated_at', to_char(t.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
         'last_seq', s.seq)
FROM (SELECT id FROM partners WHERE id = ANY($1::text[])) p
CROSS JOIN LATERAL (
  SELECT g AS seq, (g - 1) / ${eventsPerOrder} AS o, (g - 1) % ${eventsPerOrder} AS pos FROM generate_series(1, $2::int) g
) s
CROSS JOIN LATERAL (SELECT md5(p.id || ':' || s.o) AS h) hash
CROSS JOIN LATERAL (
  -- a version-4 shaped uuid, as randomUUID() makes (the API validates them)
  SELECT (substr(hash.h, 1, 8) || '-' || substr(hash.h, 9, 4) || '-4' || substr(hash.h, 14, 3) || '-8'
          || substr(hash.h, 18, 3) || '-' || substr(hash.h, 21, 12))::uuid AS order_id
) o
CROSS JOIN LATERAL (SELECT 'shop-' || lpad((s.o % ${shops} + 1)::text, 2, '0') AS shop_id) sh
CROSS JOIN LATERAL (
  SELECT $3::timestamptz + s.seq * interval '${step}' AS occurred_at,
         $3::timestamptz + (s.seq - s.pos) * interval '${step}' AS created_at
) t`;

/** After seeding `perPartner` events each: the partners' heads and their shops' last seqs, as writers keep them. */
export const setHeads = async (
  client: pg.Client,
  partnerIds: string[],
  perPartner: number,
): Promise<void> => {
  await client.query("UPDATE partners SET head_seq = $2 WHERE id = ANY($1::text[])", [
    partnerIds,
    perPartner,
  ]);
  await client.query(
    `UPDATE shops s SET last_seq = (SELECT max(seq) FROM order_events e WHERE e.partner_id = s.partner_id AND e.shop_id = s.id)
     WHERE s.partner_id = ANY($1::text[])`,
    [partnerIds],
  );
};

/**
 * Appends `count` events to one partner's log after seq `after` (a multiple of
 * `eventsPerOrder`, so that orders stay whole), as `seedEventsSql` shapes them: event s at
 * `base` + s × step, so a log appended to in several goes keeps its times in seq order.
 * Then moves the partner's head and its shops' last seqs, in the same transaction, and
 * refreshes the planner's statistics (what autovacuum would do after such a burst).
 */
export const appendEvents = async (
  client: pg.Client,
  shape: SeedShape,
  partnerId: string,
  after: number,
  count: number,
  base: Date,
): Promise<void> => {
  if (after % shape.eventsPerOrder !== 0) throw new Error(`after=${after}: not at an order's start`);
  await client.query("BEGIN");
  try {
    await client.query(
      seedEventsSql(shape).replace(
        "generate_series(1, $2::int)",
        "generate_series($4::int + 1, $4::int + $2::int)",
      ),
      [[partnerId], count, base, after],
    );
    await client.query("UPDATE partners SET head_seq = $2 WHERE id = $1", [partnerId, after + count]);
    await client.query(
      `UPDATE shops s SET last_seq = (SELECT max(seq) FROM order_events e WHERE e.partner_id = s.partner_id AND e.shop_id = s.id)
       WHERE s.partner_id = $1`,
      [partnerId],
    );
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  }
  await client.query("ANALYZE order_events");
};
