/**
 * Persistent MQTT sessions in the database (table `mqtt_sessions`), and the
 * event log as a resumed session reads it. A session is a row: its owner,
 * its authorized subscriptions and its position in the log; progress is
 * written coalesced by the broker and never moves back.
 */
import type { PartnerState } from "../domain/partners.ts";
import type {
  SessionLog,
  SessionOwner,
  SessionProgress,
  SessionRecord,
  SessionStore,
  SessionSubscription,
} from "../domain/sessions.ts";
import type { Db } from "./db.ts";
import { EVENT_TEXT_COLUMNS, type EventTextRow, readEpoch, scanKept, toLoggedEvent } from "./event-log.ts";
import type { EventTextCache } from "./event-text-cache.ts";

interface SessionRow extends Record<string, unknown> {
  client_id: string;
  credential_id: string | null;
  partner_id: string | null;
  epoch: string | null;
  position: number;
  sent_seq: number;
  subscriptions: SessionSubscription[];
  inflight: Record<string, number>;
  pubrels: number[];
}

const COLUMNS =
  "client_id, credential_id, partner_id, epoch::text AS epoch, position, sent_seq, subscriptions, inflight, pubrels";

const toRecord = (row: SessionRow): SessionRecord => ({
  clientId: row.client_id,
  credentialId: row.credential_id,
  partnerId: row.partner_id,
  epoch: row.epoch,
  position: row.position,
  sentSeq: row.sent_seq,
  subscriptions: row.subscriptions,
  inflight: row.inflight,
  pubrels: row.pubrels,
});

export const createSessionStore = (db: Db): SessionStore => ({
  async load(clientId) {
    const [row] = await db.query<SessionRow>(`SELECT ${COLUMNS} FROM mqtt_sessions WHERE client_id = $1`, [
      clientId,
    ]);
    return row ? toRecord(row) : undefined;
  },

  async addSubscriptions(clientId: string, owner: SessionOwner | null, subscriptions: SessionSubscription[]) {
    // A new session starts where the bridge's durable cursor stands: what is published from now on
    // is owed to it (a cursor that trails by up to its commit interval only re-sends a few).
    const [row] = await db.query<SessionRow>(
      `INSERT INTO mqtt_sessions AS s (client_id, credential_id, partner_id, epoch, position, sent_seq, subscriptions)
       SELECT $1, $2, $3, (SELECT epoch FROM event_log), start.seq, start.seq, $4::jsonb
       FROM (SELECT coalesce((SELECT published_seq FROM bridge_cursors WHERE partner_id = $3), 0) AS seq) start
       ON CONFLICT (client_id) DO UPDATE SET
         -- A session that held no subscription owed nothing: it starts again from now.
         position = CASE WHEN jsonb_array_length(s.subscriptions) = 0 THEN excluded.position ELSE s.position END,
         sent_seq = CASE WHEN jsonb_array_length(s.subscriptions) = 0 THEN excluded.sent_seq ELSE s.sent_seq END,
         epoch = CASE WHEN jsonb_array_length(s.subscriptions) = 0 THEN excluded.epoch ELSE s.epoch END,
         subscriptions = (
           SELECT coalesce(jsonb_agg(sub), '[]'::jsonb) FROM (
             SELECT sub FROM jsonb_array_elements(s.subscriptions) sub
             WHERE NOT EXISTS (
               SELECT 1 FROM jsonb_array_elements(excluded.subscriptions) new WHERE new->>'topic' = sub->>'topic'
             )
             UNION ALL SELECT jsonb_array_elements(excluded.subscriptions)
           ) merged
         ),
         last_seen = now()
       RETURNING ${COLUMNS}`,
      [clientId, owner?.credentialId ?? null, owner?.partnerId ?? null, JSON.stringify(subscriptions)],
    );
    return toRecord(row!);
  },

  async removeSubscriptions(clientId, topics) {
    await db.query(
      `UPDATE mqtt_sessions SET subscriptions = (
         SELECT coalesce(jsonb_agg(sub), '[]'::jsonb) FROM jsonb_array_elements(subscriptions) sub
         WHERE NOT (sub->>'topic' = ANY($2::text[]))
       ) WHERE client_id = $1`,
      [clientId, topics],
    );
  },

  async delete(clientId) {
    await db.query("DELETE FROM mqtt_sessions WHERE client_id = $1", [clientId]);
  },

  async saveProgress(progress: SessionProgress[]) {
    if (progress.length === 0) return;
    await db.query(
      `UPDATE mqtt_sessions s SET
         position = greatest(s.position, p.position),
         sent_seq = greatest(s.sent_seq, p.sent_seq),
         inflight = p.inflight,
         pubrels = ARRAY(SELECT jsonb_array_elements_text(p.pubrels)::int),
         last_seen = now()
       FROM json_to_recordset($1::json) AS p(client_id text, position bigint, sent_seq bigint, inflight jsonb, pubrels jsonb)
       WHERE s.client_id = p.client_id`,
      [
        JSON.stringify(
          progress.map((p) => ({
            client_id: p.clientId,
            position: p.position,
            sent_seq: p.sentSeq,
            inflight: p.inflight,
            pubrels: p.pubrels,
          })),
        ),
      ],
    );
  },

  async touch(clientIds) {
    if (clientIds.length === 0) return;
    await db.query("UPDATE mqtt_sessions SET last_seen = now() WHERE client_id = ANY($1::text[])", [
      clientIds,
    ]);
  },

  async expire(ttlSeconds, connected) {
    const rows = await db.query<{ n: number }>(
      `WITH gone AS (
         DELETE FROM mqtt_sessions
         WHERE last_seen < now() - make_interval(secs => $1) AND NOT (client_id = ANY($2::text[]))
         RETURNING 1
       ) SELECT count(*)::int AS n FROM gone`,
      [ttlSeconds, connected],
    );
    return rows[0]?.n ?? 0;
  },

  async countOffline() {
    // As aedes-persistence counts: subscriptions that would queue (QoS 1/2), sessions holding any.
    const [row] = await db.query<{ subs: number; clients: number }>(
      `SELECT (SELECT count(*) FROM mqtt_sessions, jsonb_array_elements(subscriptions) sub
               WHERE (sub->>'qos')::int > 0)::int AS subs,
              (SELECT count(*) FROM mqtt_sessions WHERE jsonb_array_length(subscriptions) > 0)::int AS clients`,
    );
    return { subsCount: row?.subs ?? 0, clientsCount: row?.clients ?? 0 };
  },

  async clientsSubscribedTo(topic) {
    const rows = await db.query<{ client_id: string }>(
      `SELECT client_id FROM mqtt_sessions
       WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(subscriptions) sub WHERE sub->>'topic' = $1)
       ORDER BY client_id`,
      [topic],
    );
    return rows.map((row) => row.client_id);
  },
});

/** The log as a replay reads it; with `recent`, events kept in memory are taken from there (event-text-cache.ts). */
export const createSessionLog = (db: Db, recent?: EventTextCache): SessionLog => ({
  epoch: () => readEpoch(db),
  async prunedThrough(partnerId, shopId) {
    if (shopId === undefined) {
      const [row] = await db.query<{ pruned: number }>(
        "SELECT pruned_through_seq AS pruned FROM partners WHERE id = $1",
        [partnerId],
      );
      return row?.pruned ?? 0;
    }
    // A shop's: the previous shop event of its oldest one kept (0 when that is its first ever), or,
    // with none kept, its last one: a quiet shop is not expired by its busy neighbours' pruning.
    const [row] = await db.query<{ pruned: number }>(
      `SELECT CASE WHEN p.pruned_through_seq = 0 THEN 0 ELSE coalesce(
         (SELECT coalesce(e.prev_shop_seq, 0) FROM order_events e
          WHERE e.partner_id = p.id AND e.shop_id = $2 ORDER BY e.seq LIMIT 1),
         (SELECT coalesce(s.last_seq, 0) FROM shops s WHERE s.partner_id = p.id AND s.id = $2),
         0) END AS pruned
       FROM partners p WHERE p.id = $1`,
      [partnerId, shopId],
    );
    return row?.pruned ?? 0;
  },
  async partnerState(partnerId) {
    const [row] = await db.query<{ state: PartnerState }>("SELECT state FROM partners WHERE id = $1", [
      partnerId,
    ]);
    return row?.state;
  },
  async read(partnerId, after, limit, shopId) {
    const epoch = await readEpoch(db);
    const kept = recent?.events(epoch, partnerId);
    const fromMemory = kept ? scanKept(kept, after, limit, shopId) : { events: [], next: after + 1 };
    if (fromMemory.events.length === limit) return fromMemory.events;
    // The rest from the log, from the first seq not kept. Nothing of a followed shop after `after`
    // was pruned (checked at resume), so reading from the pruned point on is the same. The events
    // are read as JSON text (toOrderEventJson).
    const rows = await db.query<EventTextRow>(
      `SELECT ${EVENT_TEXT_COLUMNS} FROM order_events
       WHERE partner_id = $1 AND seq > greatest($2::bigint, (SELECT pruned_through_seq FROM partners WHERE id = $1))
         ${shopId === undefined ? "" : "AND shop_id = $4"}
       ORDER BY seq LIMIT $3`,
      shopId === undefined
        ? [partnerId, fromMemory.next - 1, limit - fromMemory.events.length]
        : [partnerId, fromMemory.next - 1, limit - fromMemory.events.length, shopId],
    );
    const read = rows.map((row) => toLoggedEvent(row, partnerId, epoch));
    recent?.put(epoch, partnerId, read);
    return fromMemory.events.length === 0 ? read : fromMemory.events.concat(read);
  },
});
