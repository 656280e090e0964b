/**
 * The HTTP app factory: routes, auth, problem+json errors. Separate from
 * listening, so tests use `inject()` and the schema generator needs no socket.
 */
import { randomUUID, timingSafeEqual } from "node:crypto";
import fastifySwagger from "@fastify/swagger";
import Fastify, { LogController } from "fastify";
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import type { Logger } from "pino";
import { z } from "zod";
import type { CredentialVerifier } from "../domain/access.ts";
import type { OrderEvent } from "../domain/events.ts";
import { clipClientInput } from "../log.ts";
import { authenticateAdmin, authenticatePartner, authenticateTicket } from "./auth.ts";
import { openApiWebhooks } from "./openapi-webhooks.ts";
import type {
  CredentialsPort,
  OrdersPort,
  PartnersPort,
  ReadAllDeliveryStatus,
  ReadDeliveryStatus,
  ReadEvents,
  ReadEventsText,
} from "./ports.ts";
import { buildProblem, problemResponses, sendProblem, toProblem } from "./problem.ts";
import { type CredentialRateLimit, registerCredentialRateLimit } from "./rate-limit.ts";
import adminRoutes from "./routes/admin-routes.ts";
import adminStreamRoutes from "./routes/admin-stream-routes.ts";
import ordersRoutes from "./routes/orders-routes.ts";
import streamRoutes, { type StreamRoutesDeps } from "./routes/stream-routes.ts";
import {
  adminWebhooksRoutes,
  partnerWebhooksRoutes,
  type WebhooksRoutesDeps,
} from "./routes/webhooks-routes.ts";
import { createStreamTickets } from "./stream-tickets.ts";

export const BODY_LIMIT_BYTES = 64 * 1024;

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, string>;
}

export interface HttpAppDeps {
  log: Logger;
  adminToken: string;
  verifier: CredentialVerifier;
  orders: OrdersPort;
  partners: PartnersPort;
  credentials: CredentialsPort;
  readEvents: ReadEvents;
  /** GET /v1/events' pages as JSON text (sent as they are). */
  readEventsText: ReadEventsText;
  /** Requests per credential and window on /v1; absent: unlimited. */
  rateLimit?: CredentialRateLimit;
  /** GET /v1/events reads in progress at once, beyond which the next waits up to `historyMaxWaitMs` (absent: not at all), then is answered 429; absent: no bound. */
  maxPendingHistoryReads?: number;
  historyMaxWaitMs?: number;
  readiness(): Promise<ReadinessReport>;
  onCommitted?(event: OrderEvent): void;
  deliveryStatus: ReadDeliveryStatus;
  /** Every partner's status, for GET /admin/v1/status/stream (the console); absent: no such route. */
  statusStream?: { readAllStatus: ReadAllDeliveryStatus; intervalMs?: number };
  connectedClients?(partnerId: string): { backend: number; device: number } | null;
  version?: string;
  /** False for a broker-only or bridge-only process: health endpoints only. Default true. */
  serveApi?: boolean;
  /** GET /v1/events/stream (Server-Sent Events); absent: no such route. */
  eventStream?: Omit<StreamRoutesDeps, "readEvents" | "tickets">;
  /** Prometheus text for GET /metrics; absent: no /metrics route. */
  metrics?: { render(): Promise<string>; contentType: string };
  /** Bearer token GET /metrics asks for; absent: it answers anyone. */
  metricsToken?: string;
  /** Slow clients: how long headers, and a whole request, may take (defaults 10 s and 30 s). */
  timeouts?: { headersMs: number; requestMs: number };
  /** Told about every answered request (metrics). */
  onRequestCompleted?(request: {
    route: string;
    method: string;
    status: number;
    partner: string | undefined;
  }): void;
  /** Webhook endpoints' API (/v1/webhooks, /admin/v1/webhooks); absent: no such routes. */
  webhooks?: WebhooksRoutesDeps;
}

export const buildHttpApp = async (deps: HttpAppDeps) => {
  const timeouts = deps.timeouts ?? { headersMs: 10_000, requestMs: 30_000 };
  const app = Fastify({
    loggerInstance: deps.log,
    bodyLimit: BODY_LIMIT_BYTES,
    // A client that never finishes its headers or its request is cut off. Node checks these every
    // connectionsCheckingInterval (30 s by default), so check each second.
    requestTimeout: timeouts.requestMs,
    http: {
      headersTimeout: timeouts.headersMs,
      connectionsCheckingInterval: Math.min(1_000, timeouts.headersMs),
    },
    // One line per request comes from our onResponse hook instead.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: "request_id" }),
    // A caller's X-Request-Id is kept when it is a sane token; anything else gets a fresh id,
    // so logs and problem bodies never carry a caller's control characters or megabytes.
    requestIdHeader: false,
    genReqId: (request) => {
      const given = request.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Errors raised before routing (a malformed URL, an over-long path parameter) are problems too.
    frameworkErrors: (error, request, reply) => {
      sendProblem(reply, toProblem(error, request));
    },
    // Keep sockets from idling forever behind a load balancer.
    keepAliveTimeout: 65_000,
    routerOptions: { maxParamLength: 200 },
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // Bodies are JSON only (415 otherwise). Fastify parses text/plain by default,
  // which would turn a text body into a 400 "expected object" instead.
  app.removeContentTypeParser("text/plain");

  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "brewcast",
        version: deps.version ?? "0.1.0",
        description:
          "Order events for partners. The history (`GET /v1/events`) is the truth; MQTT push is the fast path. Errors are RFC 9457 problem+json with a stable `code`.",
      },
      tags: [
        { name: "orders", description: "Create, read and change orders; their current state and history." },
        { name: "events", description: "The authoritative, cursor-paged event feed." },
        {
          name: "webhooks",
          description: "Webhook endpoints: where events are POSTed, signed (Standard Webhooks).",
        },
        { name: "admin", description: "Operator API: partners, shops, credentials, the kill switch." },
        { name: "ops", description: "Health and readiness." },
      ],
      webhooks: openApiWebhooks as never,
      components: {
        securitySchemes: {
          partner: { type: "http", scheme: "bearer", description: "A partner credential's secret." },
          admin: { type: "http", scheme: "bearer", description: "BREWCAST_ADMIN_TOKEN." },
        },
      },
    },
    // Documentation only (validation never sees this): each route's auth, tag, and the 500 any route can answer.
    transform: (input) => {
      const { url } = input;
      const area = url.startsWith("/admin/v1") ? "admin" : url.startsWith("/v1") ? "partner" : "ops";
      if (area === "ops")
        return jsonSchemaTransform({ ...input, schema: { ...input.schema, tags: ["ops"] } });
      const tag =
        area === "admin"
          ? "admin"
          : url.startsWith("/v1/events")
            ? "events"
            : url.startsWith("/v1/webhooks")
              ? "webhooks"
              : "orders";
      const response = { ...(input.schema.response as object), ...problemResponses(500) };
      return jsonSchemaTransform({
        ...input,
        schema: { ...input.schema, response, tags: [tag], security: [{ [area]: [] }] },
      });
    },
    transformObject: jsonSchemaTransformObject,
  });

  app.setErrorHandler((error, request, reply) => {
    const problem = toProblem(error, request);
    if (problem.status >= 500) request.log.error({ err: error, code: problem.code }, "request failed");
    return sendProblem(reply, problem);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      buildProblem("NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0]}`, request),
    ),
  );
  app.addHook("onResponse", async (request, reply) => {
    const fields = {
      method: request.method,
      url: clipClientInput(request.url.split("?")[0]),
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
      credential: request.principal?.credentialId,
    };
    deps.onRequestCompleted?.({
      route: request.routeOptions.url ?? "unmatched",
      method: request.method,
      status: reply.statusCode,
      partner: request.principal?.partnerId,
    });
    if (reply.statusCode >= 500) request.log.error(fields, "request completed");
    else if (reply.statusCode >= 400) request.log.info(fields, "request completed");
    else request.log.debug(fields, "request completed");
  });

  app.get("/healthz", { schema: { hide: true } }, async () => ({ status: "ok" }));
  app.get(
    "/readyz",
    {
      schema: {
        summary: "Readiness: database, broker and bridge",
        response: {
          200: z.object({ ready: z.boolean(), checks: z.record(z.string(), z.string()) }),
          503: z.object({ ready: z.boolean(), checks: z.record(z.string(), z.string()) }),
        },
      },
    },
    async (_request, reply) => {
      const report = await deps.readiness();
      return reply.code(report.ready ? 200 : 503).send(report);
    },
  );
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  const metrics = deps.metrics;
  if (metrics) {
    const token = deps.metricsToken === undefined ? undefined : Buffer.from(`Bearer ${deps.metricsToken}`);
    app.get("/metrics", { schema: { hide: true } }, async (request, reply) => {
      if (token) {
        const given = Buffer.from(request.headers.authorization ?? "");
        if (given.length !== token.length || !timingSafeEqual(given, token)) {
          return sendProblem(
            reply,
            buildProblem("UNAUTHENTICATED", "GET /metrics needs its bearer token", request),
          );
        }
      }
      return reply.type(metrics.contentType).send(await metrics.render());
    });
  }

  if (deps.serveApi === false) return app;

  const tickets = createStreamTickets(deps.adminToken);

  await app.register(
    async (v1) => {
      v1.addHook("onRequest", async (request) => {
        const ticket = (request.query as { ticket?: unknown }).ticket;
        request.principal =
          typeof ticket === "string" &&
          request.headers.authorization === undefined &&
          request.routeOptions.url === "/v1/events/stream"
            ? await authenticateTicket(ticket, deps.verifier, tickets)
            : await authenticatePartner(request, deps.verifier);
      });
      // After the credential is known, before anything else is read or parsed.
      if (deps.rateLimit) await registerCredentialRateLimit(v1, deps.rateLimit);
      await v1.register(ordersRoutes, {
        orders: deps.orders,
        readEventsText: deps.readEventsText,
        ...(deps.maxPendingHistoryReads ? { maxPendingHistoryReads: deps.maxPendingHistoryReads } : {}),
        ...(deps.historyMaxWaitMs ? { historyMaxWaitMs: deps.historyMaxWaitMs } : {}),
        onCommitted: deps.onCommitted ?? (() => {}),
      });
      if (deps.eventStream) {
        await v1.register(streamRoutes, { ...deps.eventStream, readEvents: deps.readEvents, tickets });
      }
      if (deps.webhooks) await v1.register(partnerWebhooksRoutes, deps.webhooks);
    },
    { prefix: "/v1" },
  );

  await app.register(
    async (admin) => {
      admin.addHook("onRequest", async (request) => authenticateAdmin(request, deps.adminToken));
      await admin.register(adminRoutes, {
        partners: deps.partners,
        credentials: deps.credentials,
        deliveryStatus: deps.deliveryStatus,
        connectedClients: deps.connectedClients ?? (() => null),
      });
      if (deps.webhooks) await admin.register(adminWebhooksRoutes, deps.webhooks);
      if (deps.statusStream)
        await admin.register(adminStreamRoutes, {
          ...deps.statusStream,
          connectedClients: deps.connectedClients ?? (() => null),
        });
    },
    { prefix: "/admin/v1" },
  );

  return app;
};

export type HttpApp = Awaited<ReturnType<typeof buildHttpApp>>;
