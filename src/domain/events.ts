/**
 * Order events and cursors: the payloads shared by MQTT and `GET /v1/events`.
 * Pure: no I/O.
 */
import { z } from "zod";
import { orderIdSchema, partnerIdSchema, shopIdSchema } from "./ids.ts";
import { type Order, orderSchema } from "./orders.ts";
import { PARTNER_STATES } from "./partners.ts";

export const EVENT_TYPES = ["order.created", "order.status_changed"] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** The `{kind}` topic segment of each event type. */
export const EVENT_KIND: Record<EventType, "created" | "status_changed"> = {
  "order.created": "created",
  "order.status_changed": "status_changed",
};

export const epochSchema = z
  .uuid()
  .describe("Names one event log; changes only if the log is reset or restored.");

export const orderEventSchema = z
  .object({
    seq: z.number().int().min(1).describe("Gapless and strictly increasing per partner, in commit order."),
    epoch: epochSchema,
    type: z.enum(EVENT_TYPES),
    partner_id: partnerIdSchema,
    shop_id: shopIdSchema,
    order_id: orderIdSchema,
    occurred_at: z.iso.datetime({ offset: true }).describe("RFC 3339 commit-side timestamp."),
    prev_shop_seq: z
      .number()
      .int()
      .min(1)
      .nullable()
      .describe("Seq of the previous event of the same shop, null for the shop's first."),
    order: orderSchema.describe("The order as of this event."),
  })
  .meta({ id: "OrderEvent" });
export type OrderEvent = z.infer<typeof orderEventSchema>;

export const cursorSchema = z
  .object({
    seq: z.number().int().min(0).describe("The latest seq published for this scope."),
    epoch: epochSchema,
    occurred_at: z.iso.datetime({ offset: true }).nullable().describe("When that event happened."),
    published_at: z.iso.datetime({ offset: true }).describe("When this cursor was (re)published."),
  })
  .meta({ id: "Cursor" });
export type Cursor = z.infer<typeof cursorSchema>;

/** Retained on `partners/{p}/status` by the bridge: the partner's place on the degradation ladder. */
export const partnerStatusSchema = z
  .object({
    state: z
      .enum(PARTNER_STATES)
      .describe("The partner's state on the degradation ladder; `poll_only` means: poll `GET /v1/events`."),
    since: z.iso.datetime({ offset: true }).describe("RFC 3339: when the partner entered this state."),
  })
  .meta({ id: "PartnerStatus" });
export type PartnerStatus = z.infer<typeof partnerStatusSchema>;

/** What an order change did: the order as it now is, and the event it wrote (none when nothing changed). */
export interface OrderChange {
  order: Order;
  /** The event written, or undefined when nothing changed (replay, same status). */
  event: OrderEvent | undefined;
  replayed: boolean;
}

/** A read of the event log: a partner's events after `after`, or one shop's. */
export interface EventQuery {
  partnerId: string;
  shopId?: string | undefined;
  after: number;
  limit: number;
}

/** A page of `GET /v1/events`. */
export interface EventPage {
  events: OrderEvent[];
  /** The latest seq of the scope read (the partner, or the shop when filtered). */
  head_seq: number;
  epoch: string;
}

/** A page of `GET /v1/events` as JSON text, with what its cache validators are made of. */
/**
 * One event as JSON, with what a filter needs beside it: built once by the store from the
 * stored text (no parse, no stringify) for the writers that send it as it is (a replay, a page).
 */
export interface LoggedEvent {
  seq: number;
  shopId: string;
  type: EventType;
  /** The event object of the public contract (`OrderEvent`), as JSON (UTF-8), ready to be written. */
  json: Buffer;
}

export interface EventPageText {
  /** The `events` array, as JSON (UTF-8). */
  eventsJson: Buffer;
  count: number;
  /** The seq of the page's last event; `after` for an empty page. */
  lastSeq: number;
  head_seq: number;
  epoch: string;
}
