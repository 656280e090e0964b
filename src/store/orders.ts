/**
 * Orders: every change writes the order and its event in one transaction.
 * Reads are scoped: a device credential sees only its shop.
 */
import { createHash, randomUUID } from "node:crypto";
import { BrewcastError } from "../domain/errors.ts";
import type { OrderChange } from "../domain/events.ts";
import {
  allowedNextStatuses,
  type CreatedHistoryItem,
  type CreatedHistoryQuery,
  type CreateOrderBody,
  canTransition,
  type Order,
  type OrderStatus,
  type OrdersPage,
  type OrdersQuery,
} from "../domain/orders.ts";
import { type Scope, shopWithinScope } from "../domain/scope.ts";
import type { Db, NamedStatement, Queryable } from "./db.ts";
import {
  allocateSeqAt,
  appendOrderEvent,
  EVENT_TEXT_COLUMNS,
  type EventRow,
  type EventTextRow,
  readEpoch,
  toEventFromText,
  toMissing,
} from "./event-log.ts";

/** An order as the API answers it, built by SQL (`brewcast_order_json`, migration 0006), as events carry it. */
interface OrderRow extends Record<string, unknown> {
  order: Order;
}

/** One statement per order (migration 0009), prepared once per connection: the API's hot write. */
const CREATE_ORDER: NamedStatement = {
  name: "brewcast_create_order",
  text: `SELECT outcome, request_hash, ${EVENT_TEXT_COLUMNS} FROM brewcast_create_order($1, $2, $3, $4, $5, $6)`,
};

/** Selects orders `o` as the API answers them. */
const SELECT_ORDERS = "SELECT brewcast_order_json(o) AS order FROM orders o";

const notFound = (orderId: string) => new BrewcastError("NOT_FOUND", `no order ${orderId}`);

/** A stable hash of a request body: keys sorted, so key order does not matter. */
const canonicalJson = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
};
const hashRequest = (body: unknown): Buffer => createHash("sha256").update(canonicalJson(body)).digest();

/** The order, if the scope may see it (a shop scope sees only its shop's orders). */
const loadOrder = async (q: Queryable, scope: Scope, orderId: string): Promise<Order> => {
  const [row] = await q.query<OrderRow>(
    `${SELECT_ORDERS} WHERE o.id = $1 AND o.partner_id = $2 AND ($3::text IS NULL OR o.shop_id = $3)`,
    [orderId, scope.partnerId, scope.shopId],
  );
  if (!row) throw notFound(orderId);
  return row.order;
};

interface CreateOrderRow extends EventTextRow {
  outcome: "created" | "replayed";
  request_hash: Buffer | null;
}

/** Raised inside a transaction to roll it back: the order already has the requested status. */
class Unchanged {
  constructor(readonly order: Order) {}
}

export const createOrderStore = (db: Db) => {
  const create = async (
    scope: Scope,
    body: CreateOrderBody,
    idempotencyKey?: string,
  ): Promise<OrderChange> => {
    shopWithinScope(scope, body.shop_id);
    const requestHash = hashRequest(body);
    const epoch = await readEpoch(db);
    const orderId = randomUUID();
    let row: CreateOrderRow | undefined;
    try {
      // One statement (see migration 0009): claim the key, take the seq, write event and order.
      [row] = await db.query<CreateOrderRow>(CREATE_ORDER, [
        scope.partnerId,
        body.shop_id,
        orderId,
        JSON.stringify(body.items),
        idempotencyKey ?? null,
        requestHash,
      ]);
    } catch (error) {
      if ((error as { code?: string; hint?: string }).hint === "shop") {
        throw new BrewcastError("VALIDATION_FAILED", `no shop ${body.shop_id}`, [
          { field: "body.shop_id", message: "no such shop for this partner" },
        ]);
      }
      throw toMissing(error) ?? error;
    }
    if (!row) throw new Error("brewcast_create_order returned no row");
    if (row.outcome === "replayed") {
      if (!row.request_hash || Buffer.compare(row.request_hash, requestHash) !== 0) {
        throw new BrewcastError(
          "IDEMPOTENCY_KEY_REUSED",
          "this Idempotency-Key was used with a different request body",
        );
      }
      const earlier = await loadOrder(db, { partnerId: scope.partnerId, shopId: null }, row.order_id);
      return { order: earlier, event: undefined, replayed: true };
    }
    const event = toEventFromText(row, scope.partnerId, epoch);
    return { order: event.order, event, replayed: false };
  };

  const setStatus = async (scope: Scope, orderId: string, status: OrderStatus): Promise<OrderChange> => {
    const epoch = await readEpoch(db);
    try {
      return await db.transaction(async (tx) => {
        // The partner lock first: every writer of this partner queues here, so the
        // order read next is the latest committed state and no one changes it meanwhile.
        const { seq, at } = await allocateSeqAt(tx, scope.partnerId);
        const current = await loadOrder(tx, scope, orderId);
        // Rolling back (not committing) releases the seq: no gap.
        if (current.status === status) throw new Unchanged(current);
        if (!canTransition(current.status, status)) {
          const allowed = allowedNextStatuses(current.status);
          throw new BrewcastError(
            "ILLEGAL_TRANSITION",
            `order ${orderId} is ${current.status}; it can move to ${allowed.length ? allowed.join(" or ") : "nothing (final)"}, not ${status}`,
          );
        }
        await tx.query("UPDATE orders SET status = $2, updated_at = $3, last_seq = $4 WHERE id = $1", [
          orderId,
          status,
          at,
          seq,
        ]);
        const event = toEventFromText(
          await appendOrderEvent(tx, scope.partnerId, orderId, "order.status_changed"),
          scope.partnerId,
          epoch,
        );
        return { order: event.order, event, replayed: false };
      });
    } catch (error) {
      if (!(error instanceof Unchanged)) throw error;
      return { order: error.order, event: undefined, replayed: true };
    }
  };

  return {
    create,
    setStatus,
    async get(scope: Scope, orderId: string): Promise<Order> {
      return loadOrder(db, scope, orderId);
    },
    async list(scope: Scope, query: OrdersQuery): Promise<OrdersPage> {
      const shopId = shopWithinScope(scope, query.shopId) ?? null;
      // One snapshot for the orders and the head, so events after as_of_seq are exactly what is missing.
      return db.transaction(
        async (tx) => {
          const [partner] = await tx.query<{ head_seq: number }>(
            "SELECT head_seq FROM partners WHERE id = $1",
            [scope.partnerId],
          );
          if (!partner) throw new BrewcastError("NOT_FOUND", `no partner ${scope.partnerId}`);
          const rows = await tx.query<OrderRow>(
            `${SELECT_ORDERS}
             WHERE o.partner_id = $1 AND ($2::text IS NULL OR o.shop_id = $2) AND ($3::text IS NULL OR o.status = $3)
               AND ($4::uuid IS NULL OR o.id > $4::uuid)
             ORDER BY o.id LIMIT $5`,
            [scope.partnerId, shopId, query.status ?? null, query.afterId ?? null, query.limit],
          );
          return { orders: rows.map((row) => row.order), as_of_seq: partner.head_seq };
        },
        { isolation: "repeatable read", readOnly: true },
      );
    },
    async createdHistory(scope: Scope, query: CreatedHistoryQuery): Promise<CreatedHistoryItem[]> {
      const shopId = shopWithinScope(scope, query.shopId) ?? null;
      const [partner] = await db.query<{ pruned: number }>(
        "SELECT pruned_through_seq AS pruned FROM partners WHERE id = $1",
        [scope.partnerId],
      );
      if (!partner) throw new BrewcastError("NOT_FOUND", `no partner ${scope.partnerId}`);
      if (query.newerThan !== undefined && query.newerThan < partner.pruned) {
        throw new BrewcastError(
          "CURSOR_EXPIRED",
          `events up to seq ${partner.pruned} were pruned; reload GET /v1/orders`,
        );
      }
      const newestFirst = query.newerThan === undefined;
      const rows = await db.query<EventRow>(
        `SELECT seq, occurred_at, order_id, shop_id FROM order_events
         WHERE partner_id = $1 AND type = 'order.created' AND ($2::text IS NULL OR shop_id = $2)
           AND ${newestFirst ? "($3::bigint IS NULL OR seq < $3)" : "seq > $3"}
         ORDER BY seq ${newestFirst ? "DESC" : "ASC"} LIMIT $4`,
        [scope.partnerId, shopId, newestFirst ? (query.olderThan ?? null) : query.newerThan, query.limit],
      );
      return rows.map((row) => ({
        id: row.seq,
        occurred_at: row.occurred_at.toISOString(),
        order_id: row.order_id,
        shop_id: row.shop_id,
      }));
    },
  };
};

/** The order store: it implements the API's `OrdersPort` (src/api/ports.ts). */
export type OrderStore = ReturnType<typeof createOrderStore>;
