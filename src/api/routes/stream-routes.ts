/**
 * GET /v1/events/stream: the event feed as Server-Sent Events (src/stream/).
 * The same auth, scope and answers as GET /v1/events: the first page is read
 * before the response starts, so a bad cursor, an unknown shop or a position
 * past retention is a problem+json answer, not a broken stream.
 */

import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AccessChange } from "../../domain/access.ts";
import { BrewcastError } from "../../domain/errors.ts";
import { seqSchema, shopIdSchema } from "../../domain/ids.ts";
import type { Principal } from "../../domain/partners.ts";
import { scopeOf, shopWithinScope } from "../../domain/scope.ts";
import { type EventStream, type LogPage, streamEvents } from "../../stream/event-stream.ts";
import { principalOf } from "../auth.ts";
import { writeEventStreamHead } from "../event-stream-head.ts";
import { problemResponses } from "../problem.ts";
import type { StreamTickets } from "../stream-tickets.ts";

export interface StreamRoutesDeps {
  readEvents(input: { partnerId: string; shopId?: string; after: number; limit: number }): Promise<LogPage>;
  /** Calls `wake` when an event of the partner may have been committed; returns an unsubscribe. */
  subscribeCommits(partnerId: string, wake: () => void): () => void;
  /** Revocations and partner state changes: a stream whose access went away is ended. */
  subscribeAccess?(handler: (change: AccessChange) => void): () => void;
  heartbeatMs: number;
  drainTimeoutMs: number;
  maxStreamsPerPartner: number;
  onEnded?(reason: "read_failed" | "drain_timeout", error?: unknown): void;
  tickets: StreamTickets;
}

const PAGE = 1_000;

const lastEventIdSchema = z
  .string()
  .regex(/^\d{1,15}$/, "must be a seq (digits)")
  .transform(Number)
  .optional()
  .describe(
    "Sent by EventSource when it reconnects: the seq of the last event it received. Wins over `after`.",
  );

const streamRoutes: FastifyPluginAsyncZod<StreamRoutesDeps> = async (app, deps) => {
  const open = new Map<EventStream, Principal>();
  const perPartner = new Map<string, number>();
  const unsubscribeAccess = deps.subscribeAccess?.((change) => {
    for (const [stream, principal] of open) {
      if (principal.partnerId !== change.partnerId) continue;
      const ended =
        change.type === "credential_revoked"
          ? principal.credentialId === change.credentialId
          : change.state === "suspended";
      if (ended) stream.stop();
    }
  });
  // Before the server waits for its requests to finish: a stream never would.
  app.addHook("preClose", async () => {
    unsubscribeAccess?.();
    const ending = [...open.keys()];
    for (const stream of ending) stream.stop();
    await Promise.all(ending.map((stream) => stream.done));
  });

  app.post(
    "/events/stream/tickets",
    {
      schema: {
        summary: "A ticket that opens the event stream from a browser",
        description:
          "EventSource cannot send an Authorization header. Ask for a ticket with your bearer secret and open `GET /v1/events/stream?ticket=…`: it opens only the event stream, of this credential's scope, until `expires_at` (15 minutes); the credential is checked again at every use. Ask again when an EventSource gives up.",
        response: {
          201: z.object({ ticket: z.string(), expires_at: z.iso.datetime() }),
          ...problemResponses(400, 401, 403, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const { ticket, expiresAt } = deps.tickets.issue(principalOf(request).credentialId);
      return reply.code(201).send({ ticket, expires_at: expiresAt.toISOString() });
    },
  );

  app.get(
    "/events/stream",
    {
      schema: {
        summary: "The event feed as Server-Sent Events",
        description:
          "Every event of the scope after `after` (or `Last-Event-ID`), then each new one as it is committed: `id:` is the seq, `data:` the event JSON (the object of GET /v1/events). Once caught up, and every watermark interval, an `event: cursor` message carries `{ seq, epoch }`, the scope's head: silence longer than that means a dead link. Reconnect with `Last-Event-ID` (EventSource does) and nothing is lost. Past the retained history: 410 before the stream starts.",
        querystring: z.object({
          after: seqSchema.default(0).describe("Stream events with seq greater than this."),
          shop_id: shopIdSchema.optional(),
          ticket: z
            .string()
            .max(512)
            .optional()
            .describe(
              "For EventSource, which cannot send Authorization: a ticket from POST /v1/events/stream/tickets, in place of the bearer secret.",
            ),
        }),
        headers: z.object({ "last-event-id": lastEventIdSchema }),
        response: {
          200: {
            description: "An endless text/event-stream.",
            content: { "text/event-stream": { schema: z.string() } },
          },
          ...problemResponses(400, 401, 403, 404, 410, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const scope = {
        partnerId: principal.partnerId,
        shopId: shopWithinScope(scopeOf(principal), request.query.shop_id),
      };
      const count = perPartner.get(principal.partnerId) ?? 0;
      if (count >= deps.maxStreamsPerPartner) {
        reply.header("retry-after", "10");
        throw new BrewcastError(
          "RATE_LIMITED",
          `this partner has ${count} open event streams, the most it may (BREWCAST_SSE_MAX_STREAMS_PER_PARTNER)`,
        );
      }
      const after = request.headers["last-event-id"] ?? request.query.after;
      const read = (from: number) =>
        deps.readEvents({
          partnerId: scope.partnerId,
          ...(scope.shopId === undefined ? {} : { shopId: scope.shopId }),
          after: from,
          limit: PAGE,
        });
      const first = await read(after);

      perPartner.set(principal.partnerId, count + 1);
      reply.hijack();
      const response = reply.raw;
      writeEventStreamHead(response, request.id);
      response.socket?.setNoDelay(true);
      const stream = streamEvents(response, first, after, {
        read,
        pageSize: PAGE,
        subscribe: (wake) => deps.subscribeCommits(principal.partnerId, wake),
        heartbeatMs: deps.heartbeatMs,
        drainTimeoutMs: deps.drainTimeoutMs,
        ...(deps.onEnded ? { onEnded: deps.onEnded } : {}),
      });
      open.set(stream, principal);
      await stream.done;
      open.delete(stream);
      const left = (perPartner.get(principal.partnerId) ?? 1) - 1;
      if (left === 0) perPartner.delete(principal.partnerId);
      else perPartner.set(principal.partnerId, left);
    },
  );
};

export default streamRoutes;
