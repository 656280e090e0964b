/**
 * The event log as the delivery core reads it (domain's `DeliveryLog` port):
 * every partner with its head and durable cursors, the partners with a
 * backlog, the hot read of events after a position, the one-statement commit
 * of every partner's cursors, and the doorbell's listener.
 *
 * Implements a port of src/domain/delivery.ts; imports domain and store only.
 */
import type { DeliveryLog, PartnerCursors, ScopeCursor } from "../domain/delivery.ts";
import type { LoggedEvent, OrderEvent } from "../domain/events.ts";
import type { PartnerState } from "../domain/partners.ts";
import type { Db, NamedStatement } from "./db.ts";
import { DOORBELL_CHANNEL, decodeRing, LEGACY_DOORBELL_CHANNEL } from "./doorbell.ts";
import {
  EVENT_TEXT_COLUMNS,
  type EventTextRow,
  readEpoch,
  toEventBothWays,
  toEventFromText,
} from "./event-log.ts";
import type { EventTextCache } from "./event-text-cache.ts";

interface CursorRow extends Record<string, unknown> {
  partner_id: string;
  head_seq: number;
  qos: 0 | 1 | 2;
  state: PartnerState;
  published_seq: number | null;
  occurred_at: Date | null;
}

interface ShopCursorRow extends Record<string, unknown> {
  partner_id: string;
  shop_id: string;
  published_seq: number | null;
  occurred_at: Date | null;
}

/** Up to $3 events of each partner after its seq, partners in the order given: the delivery core's hot read. */
const READ_AFTER: NamedStatement = {
  name: "brewcast_read_after",
  text: `SELECT e.* FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS position (partner_id, after_seq, n)
         CROSS JOIN LATERAL (
           SELECT partner_id, ${EVENT_TEXT_COLUMNS} FROM order_events
           WHERE partner_id = position.partner_id AND seq > position.after_seq ORDER BY seq LIMIT $3
         ) e
         ORDER BY position.n, e.seq`,
};

const toScopeCursor = (seq: number | null, occurredAt: Date | null): ScopeCursor => ({
  seq: seq ?? 0,
  occurredAt: occurredAt?.toISOString() ?? null,
});

/**
 * With `recent`, every event read is kept in memory too (event-text-cache.ts): the delivery core
 * reads each event once as it commits, and the pages and replays that follow find it there.
 */
export const createDeliveryLog = async (db: Db, recent?: EventTextCache): Promise<DeliveryLog> => {
  const epoch = await readEpoch(db);
  return {
    epoch,
    async loadPartners() {
      const partners = await db.query<CursorRow>(
        `SELECT p.id AS partner_id, p.head_seq, p.qos, p.state, c.published_seq, c.occurred_at
         FROM partners p LEFT JOIN bridge_cursors c ON c.partner_id = p.id ORDER BY p.id`,
      );
      const shops = await db.query<ShopCursorRow>(
        `SELECT s.partner_id, s.id AS shop_id, c.published_seq, c.occurred_at
         FROM shops s LEFT JOIN bridge_shop_cursors c ON c.partner_id = s.partner_id AND c.shop_id = s.id`,
      );
      const byPartner = new Map<string, PartnerCursors>();
      for (const row of partners) {
        byPartner.set(row.partner_id, {
          partnerId: row.partner_id,
          headSeq: row.head_seq,
          qos: row.qos,
          state: row.state,
          published: toScopeCursor(row.published_seq, row.occurred_at),
          shops: new Map(),
        });
      }
      for (const row of shops) {
        byPartner
          .get(row.partner_id)
          ?.shops.set(row.shop_id, toScopeCursor(row.published_seq, row.occurred_at));
      }
      return [...byPartner.values()];
    },
    async partnersWithBacklog() {
      const rows = await db.query<{ id: string }>(
        `SELECT p.id FROM partners p LEFT JOIN bridge_cursors c ON c.partner_id = p.id
         WHERE p.head_seq > coalesce(c.published_seq, 0)`,
      );
      return rows.map((row) => row.id);
    },
    async readAfter(positions, limitEach) {
      if (positions.length === 0) return [];
      const rows = await db.query<EventTextRow & { partner_id: string }>(READ_AFTER, [
        positions.map((p) => p.partnerId),
        positions.map((p) => p.afterSeq),
        limitEach,
      ]);
      // With no memory to keep them in, only the objects are made (no bytes).
      if (!recent) return rows.map((row) => toEventFromText(row, row.partner_id, epoch));
      const events: OrderEvent[] = [];
      let kept: LoggedEvent[] = [];
      rows.forEach((row, i) => {
        const { event, logged } = toEventBothWays(row, row.partner_id, epoch);
        events.push(event);
        kept.push(logged);
        // Rows come partner by partner: each partner's kept in one put.
        if (rows[i + 1]?.partner_id !== row.partner_id) {
          recent.put(epoch, row.partner_id, kept);
          kept = [];
        }
      });
      return events;
    },
    async commitCursors(commits) {
      // One statement, one round trip, for every partner and shop; sorted, so that two
      // commits can never wait for each other's rows. The rows go as two JSON documents:
      // seven array parameters (a hundred partners every 100 ms) were pg's most allocating
      // work in the bridge, element by element; JSON.stringify makes each one string.
      const sorted = [...commits].sort((a, b) => (a.partnerId < b.partnerId ? -1 : 1));
      const partners = sorted.map(({ partnerId, partner }) => ({
        partner_id: partnerId,
        seq: partner.seq,
        occurred_at: partner.occurredAt,
      }));
      const shops = sorted.flatMap(({ partnerId, shops }) =>
        [...shops]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([shopId, cursor]) => ({
            partner_id: partnerId,
            shop_id: shopId,
            seq: cursor.seq,
            occurred_at: cursor.occurredAt,
          })),
      );
      await db.query(
        `WITH partner_cursor AS (
           INSERT INTO bridge_cursors (partner_id, published_seq, occurred_at, updated_at)
           SELECT partner_id, seq, occurred_at, now()
           FROM json_to_recordset($1::json) AS partner (partner_id text, seq bigint, occurred_at timestamptz)
           ON CONFLICT (partner_id) DO UPDATE SET published_seq = excluded.published_seq,
             occurred_at = excluded.occurred_at, updated_at = now()
           WHERE bridge_cursors.published_seq < excluded.published_seq
         )
         INSERT INTO bridge_shop_cursors (partner_id, shop_id, published_seq, occurred_at)
         SELECT partner_id, shop_id, seq, occurred_at
         FROM json_to_recordset($2::json) AS shop (partner_id text, shop_id text, seq bigint, occurred_at timestamptz)
         ON CONFLICT (partner_id, shop_id) DO UPDATE SET published_seq = excluded.published_seq,
           occurred_at = excluded.occurred_at
         WHERE bridge_shop_cursors.published_seq < excluded.published_seq`,
        [JSON.stringify(partners), JSON.stringify(shops)],
      );
    },
    async onDoorbell(onRing) {
      // Notifications may have been missed while the listen connection was down.
      const missed = () => onRing({ partnerIds: "all", events: [] });
      const unlisten = await db.listen(
        DOORBELL_CHANNEL,
        (payload, fromOwnRole) => onRing(decodeRing(payload, fromOwnRole, epoch)),
        missed,
      );
      let unlistenLegacy: () => Promise<void>;
      try {
        unlistenLegacy = await db.listen(LEGACY_DOORBELL_CHANNEL, (payload) =>
          onRing({ partnerIds: payload === "*" || payload === "" ? "all" : payload.split(","), events: [] }),
        );
      } catch (error) {
        await unlisten();
        throw error;
      }
      return async () => {
        await Promise.all([unlisten(), unlistenLegacy()]);
      };
    },
  };
};
