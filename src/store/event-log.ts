/**
 * The event log: appending events with their gapless per-partner seq, and
 * reading them back in seq order; the one place an event is put together
 * (`toOrderEvent`, and `toOrderEventJson` for its JSON text).
 *
 * The write path is SQL, once (migration 0006): `brewcast_allocate_seq` takes
 * the partner's next seq under its row lock (which orders writers, so seq is
 * gapless and in commit order: the migration explains why), and
 * `brewcast_append_event` writes the event. Order creation calls them inside
 * `brewcast_create_order`; status changes and tests through the functions here.
 */
import { BrewcastError } from "../domain/errors.ts";
import type {
  EventPage,
  EventPageText,
  EventQuery,
  EventType,
  LoggedEvent,
  OrderEvent,
} from "../domain/events.ts";
import type { Order } from "../domain/orders.ts";
import type { Db, NamedStatement, Queryable } from "./db.ts";
import type { EventTextCache, KeptEvents } from "./event-text-cache.ts";
import { SharedReads } from "./shared-reads.ts";

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
  /** Microseconds since 1970 (Postgres keeps microseconds; the event says milliseconds, truncated). */
  occurred_us: number;
  prev_shop_seq: number | null;
  order_json: string;
}

export const EVENT_TEXT_COLUMNS = `seq, shop_id, type, order_id::text AS order_id, prev_shop_seq,
  order_snapshot::text AS order_json,
  (date_part('epoch', occurred_at) * 1000000)::bigint AS occurred_us`;

/**
 * The event `toOrderEvent` makes, as JSON text with the same keys in the same order, put together
 * from text columns: the snapshot goes out as Postgres prints it, never parsed to be stringified
 * again. Ids, types and timestamps are constrained by the schema (slugs, uuid, an enum), so none
 * needs escaping. The timestamp comes as a number and is formatted here, as `toOrderEvent` does:
 * Postgres's `to_char` was a third of a replay's database CPU. (`date_part` is a float of seconds
 * with the microseconds exact to within a quarter of one: times a million and rounded, it is
 * exact.)
 */
export const toOrderEventJson = (row: EventTextRow, partnerId: string, epoch: string): string =>
  `{"seq":${row.seq},"epoch":"${epoch}","type":"${row.type}","partner_id":"${partnerId}","shop_id":"${row.shop_id}","order_id":"${row.order_id}","occurred_at":"${isoMillis(Math.floor(row.occurred_us / 1000))}","prev_shop_seq":${row.prev_shop_seq ?? "null"},"order":${row.order_json}}`;

/** The last second formatted (`2026-12-03T10:00:00.`): a replay's events come many to a second. */
let isoSecond = { second: Number.NaN, prefix: "" };

/** `new Date(ms).toISOString()`, the date and time formatted once per second. */
const isoMillis = (ms: number): string => {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond.second) {
    const iso = new Date(second * 1000).toISOString();
    // Years past 9999 come with a sign and six digits: not cached.
    if (iso.length !== 24) return new Date(ms).toISOString();
    isoSecond = { second, prefix: iso.slice(0, 20) };
  }
  const milli = ms - second * 1000;
  return `${isoSecond.prefix}${milli < 10 ? "00" : milli < 100 ? "0" : ""}${milli}Z`;
};

let cachedEpoch: { db: Db; epoch: string } | undefined;

/** The log's epoch never changes while a database lives, so it is read once per Db. */
export const readEpoch = async (db: Db): Promise<string> => {
  if (cachedEpoch?.db === db) return cachedEpoch.epoch;
  const [row] = await db.query<{ epoch: string }>("SELECT epoch::text AS epoch FROM event_log");
  if (!row) throw new Error("event_log has no epoch row: run migrations");
  cachedEpoch = { db, epoch: row.epoch };
  return row.epoch;
};

/** The partner's next seq and the event's time, both taken under the partner's row lock (held until the transaction ends). */
export const allocateSeqAt = async (tx: Queryable, partnerId: string): Promise<{ seq: number; at: Date }> => {
  try {
    const [row] = await tx.query<{ seq: number; occurred_at: Date }>(
      "SELECT seq, occurred_at FROM brewcast_allocate_seq($1)",
      [partnerId],
    );
    return { seq: row!.seq, at: row!.occurred_at };
  } catch (error) {
    throw toMissing(error) ?? error;
  }
};

/** Reserves the partner's next seq; holds the partner's row lock until the transaction ends. */
export const allocateSeq = async (tx: Queryable, partnerId: string): Promise<number> =>
  (await allocateSeqAt(tx, partnerId)).seq;

/** A `P0002` raised by the write functions (no partner, shop or order) as NOT_FOUND; else undefined. */
export const toMissing = (error: unknown): BrewcastError | undefined => {
  const { code, message } = error as { code?: string; message?: string };
  return code === "P0002" ? new BrewcastError("NOT_FOUND", message) : undefined;
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

/**
 * Writes one event whose seq was taken with `allocateSeq` in the same transaction, carrying
 * `order` as given (for writers of the log without an order row: tests, benchmarks).
 */
export const appendEvent = async (tx: Queryable, input: AppendEventInput): Promise<EventRow> => {
  try {
    const [row] = await tx.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM brewcast_append_event($1, $2, $3, $4, $5, $6, $7)`,
      [
        input.partnerId,
        input.shopId,
        input.orderId,
        input.type,
        input.seq,
        input.occurredAt,
        JSON.stringify(input.order),
      ],
    );
    return row!;
  } catch (error) {
    throw toMissing(error) ?? error;
  }
};

/**
 * Writes the event of an order's latest change, carrying the order as written: the caller
 * updated its row with `last_seq` and `updated_at` from `allocateSeqAt` in this transaction.
 */
export const appendOrderEvent = async (
  tx: Queryable,
  partnerId: string,
  orderId: string,
  type: EventType,
): Promise<EventTextRow> => {
  const [row] = await tx.query<EventTextRow>(
    `SELECT ${EVENT_TEXT_COLUMNS} FROM brewcast_append_order_event($1, $2, $3)`,
    [partnerId, orderId, type],
  );
  return row!;
};

/**
 * One page of a scope's events with the scope's head and the partner's pruned seq, in one
 * statement (one snapshot): $1 partner, $2 after, $3 limit, $4 the shop (a shop's scope only).
 * A row with null event columns when the page is empty; none when there is no such partner.
 */
const pageSql = (eventColumns: string, shop: boolean): string =>
  `WITH p AS (SELECT id, head_seq, pruned_through_seq FROM partners WHERE id = $1)
     SELECT ${
       shop
         ? "(SELECT coalesce(s.last_seq, 0) FROM shops s WHERE s.partner_id = p.id AND s.id = $4)"
         : "p.head_seq"
     } AS head, p.pruned_through_seq AS pruned, e.*
     FROM p LEFT JOIN LATERAL (
       SELECT ${eventColumns} FROM order_events e
       WHERE e.partner_id = p.id AND e.seq > $2 ${shop ? "AND e.shop_id = $4" : ""}
       ORDER BY e.seq LIMIT $3
     ) e ON true`;

const pageParams = (input: EventQuery): unknown[] =>
  input.shopId === undefined
    ? [input.partnerId, input.after, input.limit]
    : [input.partnerId, input.after, input.limit, input.shopId];

/** A page's first row, or why there is no page: no such partner or shop, or the cursor was pruned. */
const pageHead = <Row extends { head: number | null; pruned: number }>(
  rows: Row[],
  input: EventQuery,
): Row => {
  const first = rows[0];
  if (!first) throw new BrewcastError("NOT_FOUND", `no partner ${input.partnerId}`);
  if (first.head === null) throw new BrewcastError("NOT_FOUND", `no shop ${input.shopId}`);
  if (input.after < first.pruned) {
    throw new BrewcastError(
      "CURSOR_EXPIRED",
      `events up to seq ${first.pruned} were pruned; reload GET /v1/orders and follow events after its as_of_seq`,
    );
  }
  return first;
};

/**
 * Events after `after`, oldest first, and the scope's head, read in one
 * statement (one snapshot). A cursor behind the retained history is refused
 * with CURSOR_EXPIRED rather than silently skipping the pruned events.
 */
export const readEvents = async (db: Db, input: EventQuery): Promise<EventPage> => {
  const epoch = await readEpoch(db);
  const rows = await db.query<EventRow & { head: number; pruned: number }>(
    pageSql(EVENT_COLUMNS, input.shopId !== undefined),
    pageParams(input),
  );
  const first = pageHead(rows, input);
  const events = rows.filter((row) => row.seq !== null).map((row) => toOrderEvent(row, epoch));
  return { events, head_seq: first.head, epoch };
};

/** The page statement of `createHistoryReader`, prepared once per connection: one for a partner's scope, one for a shop's. */
const pageStatement = (shop: boolean): NamedStatement => ({
  name: shop ? "brewcast_event_page_shop" : "brewcast_event_page",
  text: pageSql(EVENT_TEXT_COLUMNS, shop),
});
const PARTNER_PAGE = pageStatement(false);
const SHOP_PAGE = pageStatement(true);

/** A row and its event's JSON text as a `LoggedEvent`: the bytes, and what a filter needs beside them. */
const loggedFromText = (row: EventTextRow, text: string): LoggedEvent => ({
  seq: row.seq,
  shopId: row.shop_id,
  type: row.type,
  json: Buffer.from(text),
});

/** An event row as JSON bytes, with what a filter needs beside it. */
export const toLoggedEvent = (row: EventTextRow, partnerId: string, epoch: string): LoggedEvent =>
  loggedFromText(row, toOrderEventJson(row, partnerId, epoch));

/** The event object of a text row: its JSON text parsed, so exactly what a page or a replay sends. */
export const toEventFromText = (row: EventTextRow, partnerId: string, epoch: string): OrderEvent =>
  JSON.parse(toOrderEventJson(row, partnerId, epoch)) as OrderEvent;

/** A row the delivery core read as text, both ways it is used: the event object (`toEventFromText`) and its bytes, to keep. */
export const toEventBothWays = (
  row: EventTextRow,
  partnerId: string,
  epoch: string,
): { event: OrderEvent; logged: LoggedEvent } => {
  const text = toOrderEventJson(row, partnerId, epoch);
  return { event: JSON.parse(text) as OrderEvent, logged: loggedFromText(row, text) };
};

type PageRow = EventTextRow & { head: number; pruned: number };

const queryPage = (db: Db, input: EventQuery): Promise<PageRow[]> =>
  db.query<PageRow>(input.shopId === undefined ? PARTNER_PAGE : SHOP_PAGE, pageParams(input));

/** The page statement run: the page's events and the scope's head, or its refusal. */
const readPage = async (
  db: Db,
  input: EventQuery,
  epoch: string,
): Promise<{ events: LoggedEvent[]; head: number }> => {
  const rows = await queryPage(db, input);
  const { head } = pageHead(rows, input);
  const events: LoggedEvent[] = [];
  for (const row of rows) if (row.seq !== null) events.push(toLoggedEvent(row, input.partnerId, epoch));
  return { events, head };
};

/**
 * Kept events after `after` in seq order, at most `limit` (one shop's only, with `shopId`),
 * up to the first seq not kept or past `through`; and that first seq not taken. Every seq up to
 * a committed head is committed and never changes: a kept one is what the log holds.
 */
export const scanKept = (
  kept: KeptEvents,
  after: number,
  limit: number,
  shopId: string | undefined,
  through = Number.POSITIVE_INFINITY,
): { events: LoggedEvent[]; next: number } => {
  const events: LoggedEvent[] = [];
  let seq = after + 1;
  for (; seq <= through && events.length < limit; seq++) {
    const event = kept.get(seq);
    if (!event) break;
    if (shopId === undefined || event.shopId === shopId) events.push(event);
  }
  return { events, next: seq };
};

export interface HistoryReader {
  read(input: EventQuery): Promise<EventPageText>;
  /** What is kept, and the events served since the start by where they came from. */
  stats(): {
    keptEvents: number;
    keptBytes: number;
    served: { memory: number; database: number };
  };
}

/**
 * GET /v1/events' pages: `readEvents` as JSON, with the same statement and refusals, each event
 * written once by `toOrderEventJson` from its text columns (the stored snapshot is never
 * parsed). Events kept in memory (event-text-cache.ts; with no memory, none) are served from
 * there: the scope's head and pruned point are still read at every page, in one row shared by
 * the pages of that scope asked at the same moment (shared-reads.ts), and only what is not kept
 * (from the first seq missing) is read from the log. Events read from the log are kept.
 */
export const createHistoryReader = (db: Db, cache: EventTextCache): HistoryReader => {
  const heads = new SharedReads<PageRow[]>();
  const served = { memory: 0, database: 0 };
  const readHead = async (input: EventQuery): Promise<number> => {
    const key = input.shopId === undefined ? input.partnerId : `${input.partnerId}\u0000${input.shopId}`;
    const rows = await heads.read(key, () => queryPage(db, { ...input, after: 0, limit: 0 }));
    return pageHead(rows, input).head;
  };
  return {
    stats: () => ({ keptEvents: cache.stats.events, keptBytes: cache.stats.bytes, served: { ...served } }),
    async read(input) {
      const epoch = await readEpoch(db);
      const kept = cache.events(epoch, input.partnerId);
      if (!kept?.has(input.after + 1)) {
        const page = await readPage(db, input, epoch);
        const { events } = page;
        cache.put(epoch, input.partnerId, events);
        served.database += events.length;
        return pageText(events, input.after, page.head, epoch);
      }
      let head = await readHead(input);
      const { events, next } = scanKept(kept, input.after, input.limit, input.shopId, head);
      served.memory += events.length;
      if (next <= head && events.length < input.limit) {
        const rest = await readPage(
          db,
          { ...input, after: next - 1, limit: input.limit - events.length },
          epoch,
        );
        const read = rest.events;
        cache.put(epoch, input.partnerId, read);
        served.database += read.length;
        events.push(...read);
        // Read later than the first head, so at least as new.
        head = rest.head;
      }
      return pageText(events, input.after, head, epoch);
    },
  };
};

const OPEN = Buffer.from("[");
const COMMA = Buffer.from(",");
const CLOSE = Buffer.from("]");

/** The page's `events` array as bytes: one copy of each event's, no string built and encoded again. */
const pageText = (events: LoggedEvent[], after: number, head: number, epoch: string): EventPageText => {
  const pieces: Buffer[] = [OPEN];
  for (let i = 0; i < events.length; i++) {
    if (i > 0) pieces.push(COMMA);
    pieces.push(events[i]!.json);
  }
  pieces.push(CLOSE);
  return {
    eventsJson: Buffer.concat(pieces),
    count: events.length,
    lastSeq: events.at(-1)?.seq ?? after,
    head_seq: head,
    epoch,
  };
};
