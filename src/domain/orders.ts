/**
 * Orders: their shape, the request bodies that create and change them, and
 * the status machine. Pure: no I/O.
 */
import { z } from "zod";
import { orderIdSchema, partnerIdSchema, shopIdSchema } from "./ids.ts";

export const ORDER_STATUSES = [
  "created",
  "accepted",
  "preparing",
  "ready",
  "picked_up",
  "cancelled",
] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];
export const orderStatusSchema = z.enum(ORDER_STATUSES).describe("Order status.");

/** created → accepted → preparing → ready → picked_up; any status before picked_up may go → cancelled. */
const NEXT: Record<OrderStatus, readonly OrderStatus[]> = {
  created: ["accepted", "cancelled"],
  accepted: ["preparing", "cancelled"],
  preparing: ["ready", "cancelled"],
  ready: ["picked_up", "cancelled"],
  picked_up: [],
  cancelled: [],
};

export const canTransition = (from: OrderStatus, to: OrderStatus): boolean => NEXT[from].includes(to);
export const allowedNextStatuses = (from: OrderStatus): readonly OrderStatus[] => NEXT[from];

export const MAX_ITEMS = 50;
export const MAX_QUANTITY = 99;

export const orderItemSchema = z
  .object({
    sku: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, "must match [A-Za-z0-9._-]{1,64}")
      .describe("Stock-keeping unit, 1 to 64 ASCII letters, digits, '.', '_' or '-'."),
    quantity: z.number().int().min(1).max(MAX_QUANTITY).describe(`Units, 1 to ${MAX_QUANTITY}.`),
  })
  .strict();

export const createOrderBodySchema = z
  .object({
    shop_id: shopIdSchema,
    items: z.array(orderItemSchema).min(1).max(MAX_ITEMS).describe(`1 to ${MAX_ITEMS} lines.`),
  })
  .strict();
export type CreateOrderBody = z.infer<typeof createOrderBodySchema>;

export const updateOrderBodySchema = z
  .object({ status: orderStatusSchema.describe("The status to move to.") })
  .strict();
export type UpdateOrderBody = z.infer<typeof updateOrderBodySchema>;

export const orderSchema = z
  .object({
    id: orderIdSchema,
    partner_id: partnerIdSchema,
    shop_id: shopIdSchema,
    status: orderStatusSchema,
    items: z.array(orderItemSchema),
    created_at: z.iso.datetime({ offset: true }).describe("RFC 3339."),
    updated_at: z.iso.datetime({ offset: true }).describe("RFC 3339."),
    last_seq: z.number().int().min(1).describe("Seq of the latest event of this order."),
  })
  .meta({ id: "Order" });
export type Order = z.infer<typeof orderSchema>;

/** A page of `GET /v1/orders`: the orders, and the partner's head at the snapshot they were read in. */
export interface OrdersPage {
  orders: Order[];
  as_of_seq: number;
}

/** What `GET /v1/orders` asks for (the scope aside). */
export interface OrdersQuery {
  shopId?: string | undefined;
  status?: OrderStatus | undefined;
  limit: number;
  afterId?: string | undefined;
}

/** One line of `GET /v1/orders/created-history`: `id` is the event's seq. */
export interface CreatedHistoryItem {
  id: number;
  occurred_at: string;
  order_id: string;
  shop_id: string;
}

/** What `GET /v1/orders/created-history` asks for (the scope aside). */
export interface CreatedHistoryQuery {
  olderThan?: number | undefined;
  newerThan?: number | undefined;
  limit: number;
  shopId?: string | undefined;
}
