/**
 * GET /admin/v1/status/stream: every partner's delivery status (head, published
 * seq, lag, state, connected clients) as Server-Sent Events, one message a
 * second, for the operator console's live table and lag charts.
 *
 * It costs nothing while nobody listens: the timer and the database read exist
 * per open stream only. A reader whose socket is full skips ticks instead of
 * piling them up, and the number of open streams is capped.
 */

import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { BrewcastError } from "../../domain/errors.ts";
import type { DeliveryStatus } from "../../domain/ladder.ts";
import { writeEventStreamHead } from "../event-stream-head.ts";
import type { ReadAllDeliveryStatus } from "../ports.ts";
import { problemResponses } from "../problem.ts";

export interface AdminStreamRoutesDeps {
  readAllStatus: ReadAllDeliveryStatus;
  /** MQTT clients of the partner on this process's broker; null without one. */
  connectedClients(partnerId: string): { backend: number; device: number } | null;
  /** Between two status messages (default 1,000 ms). */
  intervalMs?: number;
  /** Streams open at once (default 20); beyond it a new one is answered 429. */
  maxStreams?: number;
}

/** One partner in a status message: the fields of GET /admin/v1/partners/{p}/health but the audit. */
const toWire = (status: DeliveryStatus, clients: { backend: number; device: number } | null) => ({
  partner_id: status.partnerId,
  state: status.state,
  pinned: status.pinned,
  head_seq: status.headSeq,
  published_seq: status.publishedSeq,
  lag_events: status.lagEvents,
  lag_seconds: Math.round(status.lagSeconds * 1_000) / 1_000,
  connected_clients: clients,
});

const adminStreamRoutes: FastifyPluginAsyncZod<AdminStreamRoutesDeps> = async (app, deps) => {
  const intervalMs = deps.intervalMs ?? 1_000;
  const maxStreams = deps.maxStreams ?? 20;
  const open = new Set<() => void>();
  // Before the server waits for its requests to finish: a stream never would.
  app.addHook("preClose", async () => {
    for (const end of [...open]) end();
  });

  app.get(
    "/status/stream",
    {
      schema: {
        summary: "Every partner's delivery status, live (Server-Sent Events)",
        description:
          "Each second an `event: status` message whose `data:` is `{ at, partners: [ { partner_id, state, pinned, head_seq, published_seq, lag_events, lag_seconds, connected_clients } ] }`. Read it with fetch() and the Authorization header (EventSource cannot send one).",
        response: {
          200: {
            description: "An endless text/event-stream.",
            content: { "text/event-stream": { schema: z.string() } },
          },
          ...problemResponses(401, 429, 503),
        },
      },
    },
    async (request, reply) => {
      if (open.size >= maxStreams) {
        reply.header("retry-after", "10");
        throw new BrewcastError("RATE_LIMITED", `${open.size} status streams are open, the most allowed`);
      }
      reply.hijack();
      const response = reply.raw;
      writeEventStreamHead(response, request.id);
      let reading = false;
      const tick = async () => {
        // A slow reader (full socket) or a slow database: skip this tick rather than queue it.
        if (reading || response.writableNeedDrain || response.destroyed) return;
        reading = true;
        try {
          const partners = (await deps.readAllStatus()).map((s) =>
            toWire(s, deps.connectedClients(s.partnerId)),
          );
          const data = JSON.stringify({ at: new Date().toISOString(), partners });
          if (!response.destroyed) response.write(`event: status\ndata: ${data}\n\n`);
        } catch (error) {
          request.log.warn({ err: error }, "status stream read failed");
        } finally {
          reading = false;
        }
      };
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => void tick(), intervalMs);
        const end = () => {
          clearInterval(timer);
          open.delete(end);
          if (!response.destroyed) response.end();
          resolve();
        };
        open.add(end);
        response.once("close", end);
        response.write(`retry: 2000\n\n`);
        void tick();
      });
    },
  );
};

export default adminStreamRoutes;
