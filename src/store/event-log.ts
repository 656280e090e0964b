/**
 * The event log: appending events with their gapless per-partner seq, and
 * reading them back in seq order.
 *
 * Why seq is gapless and in commit order: `appendEvent` first increments
 * `partners.head_seq` with an UPDATE, which row-locks the partner until the
 * transaction ends. A second writer of the same partner waits on that lock
 * and reads the committed head only after the first committed (or rolled
 * back, releasing its number). So seq N+1 never commits before seq N, and a
 * reader that sees N+1 can already see N.
 */
import { BrewcastError } from "../domain/errors.ts";
import type { EventType, OrderEvent } from "../domain/events.ts";
import type { Order } from "../domain/orders.ts";
import type { Db, Queryable } from "./db.ts";

export interface EventRow extends Record<string, unknown> {
  partner_id: string;
  seq: number;
  shop_id: string;
  order_id: string;
  type: EventType;
  occurred_at: Date;
  prev_shop_seq: number | null;
  order_snapshot: Order;
}

export const EVENT_COLUMNS =
  "partner_id, seq, shop_id, order_id, type, occurred_at, prev_shop_seq, order_snapshot";

export const toOrderEvent = (row: EventRow, epoch: string): OrderEvent => ({
  seq: row.seq,
  epoch,
  type: row.type,
  partner_id: row.partner_id,
  shop_id: row.shop_id,
  order_id: row.order_id,
  occurred_at: row.occurred_at.toISOString(),
  prev_shop_seq: row.prev_shop_seq,
  order: row.order_snapshot,
});

/** An event's columns as text, for `toOrderEventJson`. */
export interface EventTextRow extends Record<string, unknown> {
  seq: number;
  shop_id: string;
  type: EventType;
  order_id: string;
  occurred_at: string;
  prev_shop_seq: number | null;
  order_json: string;
}

export const EVENT_TEXT_COLUMNS = `seq, shop_id, type, order_id::text AS order_id, prev_shop_seq,
  order_snapshot::text AS order_json,
  to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS occurred_at`;

/**
 * The event `toOrderEvent` makes, as JSON text with the same keys in the same order, put together
 * from text columns: the snapshot goes out as Postgres prints it, never parsed to be stringified
 * again. Ids, types and timestamps are constrained by the schema (slugs, uuid, an enum), so none
 * needs escaping.
 */
export const toOrderEventJson = (row: EventTextRow, partnerId: string, epoch: string): string =>
  `{"seq":${row.seq},"epoch":"${epoch}","type":"${row.type}","partner_id":"${partnerId}","shop_id":"${row.shop_id}","order_id":"${row.order_id}","occurred_at":"${row.occurred_at}","prev_shop_seq":${row.prev_shop_seq ?? "null"},"order":${row.order_json}}`;

let cachedEpoch: { db: Db; epoch: string } | undefined;

/** The log's epoch never changes while a database lives, so it is read once per Db. */
export const readEpoch = async (db: Db): Promise<string> => {
  if (cachedEpoch?.db === db) return cachedEpoch.epoch;
  const [row] = await db.query<{ epoch: string }>("SELECT epoch::text AS epoch FROM event_log");
  if (!row) throw new Error("event_log has no epoch row: run migrations");
  cachedEpoch = { db, epoch: row.epoch };
  return row.epoch;
};

/** Reserves the partner's next seq; holds the partner's row lock until the transaction ends. */
export const allocateSeq = async (tx: Queryable, partnerId: string): Promise<number> => {
  const [row] = await tx.query<{ head_seq: number }>(
    "UPDATE partners SET head_seq = head_seq + 1 WHERE id = $1 RETURNING head_seq",
    [partnerId],
  );
  if (!row) throw new BrewcastError("NOT_FOUND", `no partner ${partnerId}`);
  return row.head_seq;
};

/**
 * Records `seq` as the shop's latest and returns the previous one. A separate
 * statement from `allocateSeq`, so its snapshot is taken after the partner
 * lock was granted and sees the previous writer's update.
 */
const advanceShop = async (
  tx: Queryable,
  partnerId: string,
  shopId: string,
  seq: number,
): Promise<number | null> => {
  const [row] = await tx.query<{ prev: number | null }>(
    `UPDATE shops s SET last_seq = $3 FROM shops old
     WHERE s.partner_id = $1 AND s.id = $2 AND old.partner_id = s.partner_id AND old.id = s.id
     RETURNING old.last_seq AS prev`,
    [partnerId, shopId, seq],
  );
  if (!row) throw new BrewcastError("NOT_FOUND", `no shop ${shopId}`);
  return row.prev;
};

export interface AppendEventInput {
  partnerId: string;
  shopId: string;
  orderId: string;
  type: EventType;
  seq: number;
  occurredAt: Date;
  order: Order;
}

/** Writes one event whose seq was taken with `allocateSeq` in the same transaction. */
export const appendEvent = async (tx: Queryable, input: AppendEventInput): Promise<EventRow> => {
  const prevShopSeq = await advanceShop(tx, input.partnerId, input.shopId, input.seq);
  const [row] = await tx.query<EventRow>(
    `INSERT INTO order_events (partner_id, seq, shop_id, order_id, type, occurred_at, prev_shop_seq, order_snapshot)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${EVENT_COLUMNS}`,
    [
      input.partnerId,
      input.seq,
      input.shopId,
      input.orderId,
      input.type,
      input.occurredAt,
      prevShopSeq,
      JSON.stringify(input.order),
    ],
  );
  return row!;
};

export interface EventPage {
  events: OrderEvent[];
  /** The latest seq of the scope read (the partner, or the shop when filtered). */
  head_seq: number;
  epoch: string;
}

export interface ReadEventsInput {
  partnerId: string;
  shopId?: string | undefined;
  after: number;
  limit: number;
}

/**
 * Events after `after`, oldest first, and the scope's head, read in one
 * statement (one snapshot). A cursor behind the retained history is refused
 * with CURSOR_EXPIRED rather than silently skipping the pruned events.
 */
export const readEvents = async (db: Db, input: ReadEventsInput): Promise<EventPage> => {
  const epoch = await readEpoch(db);
  const shopFilter = input.shopId === undefined ? "" : "AND e.shop_id = $4";
  const params: unknown[] = [input.partnerId, input.after, input.limit];
  if (input.shopId !== undefined) params.push(input.shopId);
  const headExpr =
    input.shopId === undefined
      ? "p.head_seq"
      : "(SELECT coalesce(s.last_seq, 0) FROM shops s WHERE s.partner_id = p.id AND s.id = $4)";
  const rows = await db.query<EventRow & { head: number; pruned: number }>(
    `WITH p AS (SELECT id, head_seq, pruned_through_seq FROM partners WHERE id = $1)
     SELECT ${headExpr} AS head, p.pruned_through_seq AS pruned, e.*
     FROM p LEFT JOIN LATERAL (
       SELECT ${EVENT_COLUMNS} FROM order_events e
       WHERE e.partner_id = p.id AND e.seq > $2 ${shopFilter}
       ORDER BY e.seq LIMIT $3
     ) e ON true`,
    params,
  );
  const first = rows[0];
  if (!first) throw new BrewcastError("NOT_FOUND", `no partner ${input.partnerId}`);
  if (first.head === null) throw new BrewcastError("NOT_FOUND", `no shop ${input.shopId}`);
  if (input.after < first.pruned) {
    throw new BrewcastError(
      "CURSOR_EXPIRED",
      `events up to seq ${first.pruned} were pruned; reload GET /v1/orders and follow events after its as_of_seq`,
    );
  }
  const events = rows.filter((row) => row.seq !== null).map((row) => toOrderEvent(row, epoch));
  return { events, head_seq: first.head, epoch };
};
