/**
 * Partner routes under /v1: orders, their history, the events feed.
 */
import type { FastifyReply } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { BrewcastError } from "../../domain/errors.ts";
import {
  type EventPageText,
  type OrderChange,
  type OrderEvent,
  orderEventSchema,
} from "../../domain/events.ts";
import { orderIdSchema, seqSchema, shopIdSchema } from "../../domain/ids.ts";
import {
  createOrderBodySchema,
  orderSchema,
  orderStatusSchema,
  updateOrderBodySchema,
} from "../../domain/orders.ts";
import { scopeOf, shopWithinScope } from "../../domain/scope.ts";
import { principalOf } from "../auth.ts";
import { ifNoneMatchHits, pageValidators } from "../event-page-cache.ts";
import { createHistoryAdmission } from "../history-admission.ts";
import type { OrdersPort, ReadEventsText } from "../ports.ts";
import { problemResponses } from "../problem.ts";

export interface OrdersRoutesDeps {
  orders: OrdersPort;
  readEventsText: ReadEventsText;
  /**
   * GET /v1/events reads in progress at once, whoever asks; beyond it the next waits its turn
   * for at most `historyMaxWaitMs` (absent: not at all), then is answered 429 with Retry-After
   * rather than left queued for a database connection. Absent: no bound.
   */
  maxPendingHistoryReads?: number;
  historyMaxWaitMs?: number;
  /** An order change committed its event (the bridge in this process is woken with it). */
  onCommitted(event: OrderEvent): void;
}

const limit = (max: number, fallback: number) =>
  z.coerce
    .number()
    .int()
    .min(1)
    .max(max)
    .default(fallback)
    .describe(`Page size, 1 to ${max}; default ${fallback}.`);

const idempotencyKeySchema = z
  .string()
  .regex(/^[\x21-\x7e]{1,255}$/, "must be 1 to 255 visible ASCII characters")
  .optional()
  .describe(
    "Retry-safe creation: the same key and body return the same order without a second event, for 24 hours.",
  );

const AUTH_ERRORS = [401, 403] as const;

/**
 * For the big read routes (a page of events is ~50 kB): plain JSON.stringify instead of
 * re-validating every event against its zod schema on the way out, which cost about a
 * third of the CPU of a request. The data comes from our own store; the schema stays for
 * the OpenAPI document, and the contract tests check real responses against it.
 */
const plainJson = () => (data: unknown) => JSON.stringify(data);

const EVENTS_FIELD = Buffer.from('{"events":');

const ordersRoutes: FastifyPluginAsyncZod<OrdersRoutesDeps> = async (app, deps) => {
  const admission = createHistoryAdmission(
    deps.maxPendingHistoryReads ?? Number.POSITIVE_INFINITY,
    deps.historyMaxWaitMs ?? 0,
  );
  const answerChange = (change: OrderChange) => {
    if (change.event) deps.onCommitted(change.event);
    return change.order;
  };

  app.post(
    "/orders",
    {
      schema: {
        summary: "Create an order",
        description: "Writes the order and its `order.created` event in one transaction.",
        headers: z.looseObject({ "idempotency-key": idempotencyKeySchema }),
        body: createOrderBodySchema,
        response: {
          201: orderSchema,
          200: orderSchema.describe("Replay of an earlier request with the same Idempotency-Key and body."),
          ...problemResponses(400, ...AUTH_ERRORS, 404, 413, 415, 422, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const change = await deps.orders.create(
        scopeOf(principalOf(request)),
        request.body,
        request.headers["idempotency-key"],
      );
      if (change.replayed) reply.header("idempotent-replayed", "true");
      return reply.code(change.replayed ? 200 : 201).send(answerChange(change));
    },
  );

  app.get(
    "/orders/:id",
    {
      schema: {
        summary: "Get an order",
        params: z.object({ id: orderIdSchema }),
        response: { 200: orderSchema, ...problemResponses(400, ...AUTH_ERRORS, 404, 429, 503) },
      },
    },
    async (request) => {
      return deps.orders.get(scopeOf(principalOf(request)), request.params.id);
    },
  );

  app.patch(
    "/orders/:id",
    {
      schema: {
        summary: "Change an order's status",
        description:
          "created → accepted → preparing → ready → picked_up, or → cancelled before picked_up. Asking for the current status again changes nothing and writes no event.",
        params: z.object({ id: orderIdSchema }),
        body: updateOrderBodySchema,
        response: {
          200: orderSchema,
          ...problemResponses(400, ...AUTH_ERRORS, 404, 409, 413, 415, 429, 503),
        },
      },
    },
    async (request) => {
      const change = await deps.orders.setStatus(
        scopeOf(principalOf(request)),
        request.params.id,
        request.body.status,
      );
      return answerChange(change);
    },
  );

  app.get(
    "/orders",
    {
      serializerCompiler: plainJson,
      schema: {
        summary: "The current state of orders, in one snapshot",
        description:
          "Page with `after_id` (ascending order ids). Load the state, then follow `GET /v1/events?after=` from the smallest `as_of_seq` of the pages read.",
        querystring: z.object({
          shop_id: shopIdSchema.optional(),
          status: orderStatusSchema.optional(),
          limit: limit(1000, 100),
          after_id: orderIdSchema
            .optional()
            .describe("Keyset cursor: the last order id of the previous page."),
        }),
        response: {
          200: z.object({
            orders: z.array(orderSchema),
            as_of_seq: z.number().int().min(0).describe("The partner's head seq at the snapshot."),
          }),
          ...problemResponses(400, ...AUTH_ERRORS, 404, 429, 503),
        },
      },
    },
    async (request) => {
      return deps.orders.list(scopeOf(principalOf(request)), {
        shopId: request.query.shop_id,
        status: request.query.status,
        limit: request.query.limit,
        afterId: request.query.after_id,
      });
    },
  );

  app.get(
    "/orders/created-history",
    {
      serializerCompiler: plainJson,
      schema: {
        summary: "History of created orders",
        description:
          "`older_than` (or neither) pages newest first; `newer_than` pages oldest first. `id` is the event's seq.",
        querystring: z
          .object({
            older_than: seqSchema.optional(),
            newer_than: seqSchema.optional(),
            limit: limit(100, 20),
            shop_id: shopIdSchema.optional(),
          })
          .refine((q) => q.older_than === undefined || q.newer_than === undefined, {
            message: "use older_than or newer_than, not both",
            path: ["older_than"],
          }),
        response: {
          200: z.object({
            orders_created_events: z.array(
              z.object({
                id: z.number().int().min(1).describe("The event's seq."),
                occurred_at: z.iso.datetime({ offset: true }),
                order_id: orderIdSchema,
                shop_id: shopIdSchema,
              }),
            ),
          }),
          ...problemResponses(400, ...AUTH_ERRORS, 404, 410, 429, 503),
        },
      },
    },
    async (request) => {
      const items = await deps.orders.createdHistory(scopeOf(principalOf(request)), {
        shopId: request.query.shop_id,
        olderThan: request.query.older_than,
        newerThan: request.query.newer_than,
        limit: request.query.limit,
      });
      return { orders_created_events: items };
    },
  );

  app.get(
    "/events",
    {
      serializerCompiler: plainJson,
      schema: {
        summary: "The event feed: every event type, oldest first",
        description:
          "The authoritative history. Page with `after` = the last seq you handled until `events` is empty or you reach `head_seq`. A device credential reads its shop only; gaps in `seq` are then expected, follow `prev_shop_seq`.",
        querystring: z.object({
          after: seqSchema.default(0).describe("Return events with seq greater than this."),
          limit: limit(1000, 100),
          shop_id: shopIdSchema.optional(),
        }),
        response: {
          200: z.object({
            events: z.array(orderEventSchema),
            head_seq: z
              .number()
              .int()
              .min(0)
              .describe("Latest committed seq of the scope read (partner, or shop)."),
            epoch: z.uuid(),
          }),
          ...problemResponses(400, ...AUTH_ERRORS, 404, 410, 429, 503),
        },
      },
    },
    async (request, typedReply) => {
      // Sent as text and 304s: outside what the typed reply (the 200 schema) allows.
      const reply = typedReply as unknown as FastifyReply;
      const scope = scopeOf(principalOf(request));
      const query = {
        partnerId: scope.partnerId,
        shopId: shopWithinScope(scope, request.query.shop_id),
        after: request.query.after,
        limit: request.query.limit,
      };
      // In a storm a queue for the database pool only grows until requests time out (500s):
      // past the bound, an early 429 says when to come back (history-admission.ts).
      const slot = await admission.enter();
      if (!slot.admitted) {
        reply.header("retry-after", String(slot.retryAfterSeconds));
        throw new BrewcastError(
          "RATE_LIMITED",
          `${slot.inProgress} history reads are in progress, the most this server takes at once (BREWCAST_HISTORY_MAX_PENDING); retry after Retry-After, with jitter`,
        );
      }
      let page: EventPageText;
      try {
        page = await deps.readEventsText(query);
      } finally {
        slot.leave();
      }
      // Caching and validators: event-page-cache.ts says what may be kept where, and why.
      const { etag, cacheControl } = pageValidators(query, page);
      reply.header("etag", etag).header("cache-control", cacheControl).header("vary", "Authorization");
      if (ifNoneMatchHits(request.headers["if-none-match"], etag)) return reply.code(304).send();
      // Written once from the stored JSON text: the response schema above documents it, the
      // contract tests check it, and nothing here parses or re-validates it.
      return reply
        .type("application/json; charset=utf-8")
        .send(
          Buffer.concat([
            EVENTS_FIELD,
            page.eventsJson,
            Buffer.from(`,"head_seq":${page.head_seq},"epoch":"${page.epoch}"}`),
          ]),
        );
    },
  );
};

export default ordersRoutes;
