/**
 * Webhook endpoints: the partner's routes under /v1 (back-end credentials
 * only) and the operator's under /admin/v1.
 *
 * A new or changed URL is checked by the SSRF guard at once (400 naming
 * `body.url`), then verified in the background (a signed challenge); it is
 * delivered to only after an operator confirms it (POST
 * /admin/v1/webhooks/{id}/confirm), so a stolen back-end secret alone cannot
 * redirect the partner's orders.
 */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { BrewcastError } from "../../domain/errors.ts";
import { partnerIdSchema } from "../../domain/ids.ts";
import type { WebhookStore } from "../../domain/webhooks.ts";
import {
  confirmBodySchema,
  createdWebhookEndpointSchema,
  createWebhookBodySchema,
  reasonBodySchema,
  replayBodySchema,
  updateWebhookBodySchema,
  webhookAttemptSchema,
  webhookEndpointIdSchema,
  webhookEndpointSchema,
} from "../../domain/webhooks.ts";
import { type AddressGuard, WebhookAddressError } from "../../webhooks/address-guard.ts";
import type { WebhookVerifier } from "../../webhooks/verification.ts";
import { principalOf } from "../auth.ts";
import { problemResponses } from "../problem.ts";

export interface WebhooksRoutesDeps {
  store: WebhookStore;
  verifier: WebhookVerifier;
  guard: AddressGuard;
  /** How long the previous secret keeps signing after a rotation. */
  secretOverlapSeconds: number;
}

const endpointParams = z.object({ id: webhookEndpointIdSchema });
const partnerParams = z.object({ partner: partnerIdSchema });

const listSchema = z.object({ webhooks: z.array(webhookEndpointSchema) });

const verifyResultSchema = z.object({
  verified: z.boolean().describe("The URL answered 2xx and echoed the challenge."),
  attempt: webhookAttemptSchema,
  webhook: webhookEndpointSchema,
});

const auditSchema = z.object({
  audit: z.array(
    z.object({
      at: z.iso.datetime({ offset: true }),
      actor: z
        .string()
        .describe(
          "The back-end credential id, `admin`, `verification` or `delivery` (the delivery loop, e.g. on 410).",
        ),
      action: z.string(),
      old_url: z.string().nullable(),
      new_url: z.string().nullable(),
      detail: z.record(z.string(), z.unknown()),
    }),
  ),
});

/** The SSRF guard's verdict on a URL a partner gives: a 400 naming the field. */
const checkUrl = async (guard: AddressGuard, url: string) => {
  try {
    await guard.check(url);
  } catch (error) {
    if (!(error instanceof WebhookAddressError)) throw error;
    throw new BrewcastError("VALIDATION_FAILED", `invalid body: body.url ${error.message}`, [
      { field: "body.url", message: error.message },
    ]);
  }
};

const PARTNER_ERRORS = [400, 401, 403, 404, 429, 503] as const;

export const partnerWebhooksRoutes: FastifyPluginAsyncZod<WebhooksRoutesDeps> = async (app, deps) => {
  // A device credential sees one shop; where its partner's events go is not its business.
  app.addHook("onRequest", async (request) => {
    if (principalOf(request).kind !== "backend") {
      throw new BrewcastError("FORBIDDEN", "webhook endpoints need a backend credential");
    }
  });
  const partnerOf = (request: Parameters<typeof principalOf>[0]) => principalOf(request).partnerId;
  const actorOf = (request: Parameters<typeof principalOf>[0]) => principalOf(request).credentialId;

  app.post(
    "/webhooks",
    {
      schema: {
        summary: "Create a webhook endpoint",
        description:
          "Returns the signing secret once. The endpoint is `pending` (sent nothing) until its URL echoed a signed verification challenge (sent now, in the background) and an operator confirmed it.",
        body: createWebhookBodySchema,
        response: {
          201: createdWebhookEndpointSchema,
          ...problemResponses(...PARTNER_ERRORS, 409, 413, 415),
        },
      },
    },
    async (request, reply) => {
      await checkUrl(deps.guard, request.body.url);
      const { endpoint, secret } = await deps.store.create(
        partnerOf(request),
        actorOf(request),
        request.body,
      );
      deps.verifier.verifyLater(endpoint.id);
      return reply.code(201).send({ ...endpoint, secret });
    },
  );

  app.get(
    "/webhooks",
    {
      schema: {
        summary: "List the partner's webhook endpoints",
        response: { 200: listSchema, ...problemResponses(...PARTNER_ERRORS) },
      },
    },
    async (request) => ({ webhooks: await deps.store.list(partnerOf(request)) }),
  );

  app.get(
    "/webhooks/:id",
    {
      schema: {
        summary: "Get a webhook endpoint",
        params: endpointParams,
        response: { 200: webhookEndpointSchema, ...problemResponses(...PARTNER_ERRORS) },
      },
    },
    async (request) => deps.store.get(partnerOf(request), request.params.id),
  );

  app.patch(
    "/webhooks/:id",
    {
      schema: {
        summary: "Change a webhook endpoint",
        description:
          "A new URL returns the endpoint to `pending`: nothing is sent until it is verified and confirmed again. Events committed meanwhile wait (the position does not move).",
        params: endpointParams,
        body: updateWebhookBodySchema,
        response: { 200: webhookEndpointSchema, ...problemResponses(...PARTNER_ERRORS, 413, 415) },
      },
    },
    async (request) => {
      if (request.body.url !== undefined) await checkUrl(deps.guard, request.body.url);
      const before = await deps.store.get(partnerOf(request), request.params.id);
      const endpoint = await deps.store.update(
        partnerOf(request),
        request.params.id,
        actorOf(request),
        request.body,
      );
      if (endpoint.url !== before.url) deps.verifier.verifyLater(endpoint.id);
      return endpoint;
    },
  );

  app.delete(
    "/webhooks/:id",
    {
      schema: {
        summary: "Delete a webhook endpoint",
        params: endpointParams,
        response: {
          200: webhookEndpointSchema.describe("The endpoint as it was."),
          ...problemResponses(...PARTNER_ERRORS),
        },
      },
    },
    async (request) => {
      const endpoint = await deps.store.get(partnerOf(request), request.params.id);
      await deps.store.remove(partnerOf(request), request.params.id, actorOf(request));
      return endpoint;
    },
  );

  app.post(
    "/webhooks/:id/rotate-secret",
    {
      schema: {
        summary: "Rotate a webhook endpoint's signing secret",
        description:
          "Returns the new secret once. For the overlap (BREWCAST_WEBHOOK_SECRET_OVERLAP_SECONDS, default 24 hours) each request carries two signatures, the new secret's and the old one's, so the receiver can switch at any time within it.",
        params: endpointParams,
        response: { 200: createdWebhookEndpointSchema, ...problemResponses(...PARTNER_ERRORS) },
      },
    },
    async (request) => {
      const { endpoint, secret } = await deps.store.rotateSecret(
        partnerOf(request),
        request.params.id,
        actorOf(request),
        deps.secretOverlapSeconds,
      );
      return { ...endpoint, secret };
    },
  );

  app.post(
    "/webhooks/:id/verify",
    {
      schema: {
        summary: "Send the verification challenge to a webhook endpoint now",
        description:
          'POSTs a signed `{"type":"webhook.verification","challenge":"…"}`; the URL must answer 2xx with `{"challenge":"<the same>"}`.',
        params: endpointParams,
        response: { 200: verifyResultSchema, ...problemResponses(...PARTNER_ERRORS) },
      },
    },
    async (request) => {
      await deps.store.get(partnerOf(request), request.params.id);
      const { endpoint, outcome } = await deps.verifier.verify(request.params.id);
      const { attempt } = outcome;
      return {
        verified: outcome.ok,
        attempt: {
          at: new Date().toISOString(),
          kind: attempt.kind,
          webhook_id: attempt.webhookId,
          seq: attempt.seq,
          status: attempt.status,
          latency_ms: Math.round(attempt.latencyMs),
          error: attempt.error,
        },
        webhook: endpoint,
      };
    },
  );

  app.post(
    "/webhooks/:id/replay",
    {
      schema: {
        summary: "Deliver a webhook endpoint's events again from a seq",
        description:
          "Moves the endpoint's position back to `from_seq - 1`: every event from `from_seq` on is delivered again, with the same `webhook-id`s. 410 CURSOR_EXPIRED when `from_seq` is past retention.",
        params: endpointParams,
        body: replayBodySchema,
        response: { 200: webhookEndpointSchema, ...problemResponses(...PARTNER_ERRORS, 410, 413, 415) },
      },
    },
    async (request) =>
      deps.store.replay(partnerOf(request), request.params.id, actorOf(request), request.body.from_seq),
  );

  app.get(
    "/webhooks/:id/attempts",
    {
      schema: {
        summary: "The latest delivery and verification attempts of a webhook endpoint",
        description: "Newest first; the last 100 are kept.",
        params: endpointParams,
        response: {
          200: z.object({ attempts: z.array(webhookAttemptSchema) }),
          ...problemResponses(...PARTNER_ERRORS),
        },
      },
    },
    async (request) => ({ attempts: await deps.store.listAttempts(partnerOf(request), request.params.id) }),
  );
};

const ADMIN_ERRORS = [400, 401, 404, 429, 503] as const;

export const adminWebhooksRoutes: FastifyPluginAsyncZod<WebhooksRoutesDeps> = async (app, deps) => {
  app.get(
    "/partners/:partner/webhooks",
    {
      schema: {
        summary: "List a partner's webhook endpoints",
        params: partnerParams,
        response: { 200: listSchema, ...problemResponses(...ADMIN_ERRORS) },
      },
    },
    async (request) => ({ webhooks: await deps.store.list(request.params.partner) }),
  );

  app.get(
    "/webhooks/:id",
    {
      schema: {
        summary: "Get any webhook endpoint",
        params: endpointParams,
        response: { 200: webhookEndpointSchema, ...problemResponses(...ADMIN_ERRORS) },
      },
    },
    async (request) => deps.store.get(null, request.params.id),
  );

  app.get(
    "/webhooks/:id/audit",
    {
      schema: {
        summary: "Every change to a webhook endpoint, oldest first",
        params: endpointParams,
        response: { 200: auditSchema, ...problemResponses(...ADMIN_ERRORS) },
      },
    },
    async (request) => ({ audit: await deps.store.listAudit(request.params.id) }),
  );

  app.post(
    "/webhooks/:id/confirm",
    {
      schema: {
        summary: "Confirm a webhook endpoint's URL",
        description:
          "The second condition before a new or changed URL is sent events (the first: it echoed the verification challenge). Give the URL you checked with the partner through a channel other than its API secret; 409 WEBHOOK_URL_MISMATCH if it changed since.",
        params: endpointParams,
        body: confirmBodySchema,
        response: { 200: webhookEndpointSchema, ...problemResponses(...ADMIN_ERRORS, 409, 413, 415) },
      },
    },
    async (request) => deps.store.confirm(request.params.id, "admin", request.body.url),
  );

  app.post(
    "/webhooks/:id/disable",
    {
      schema: {
        summary: "Disable a webhook endpoint",
        description:
          "Nothing is sent to it until enabled; its position stays, so enabling resumes where it stopped.",
        params: endpointParams,
        body: reasonBodySchema,
        response: { 200: webhookEndpointSchema, ...problemResponses(...ADMIN_ERRORS, 413, 415) },
      },
    },
    async (request) => deps.store.setStatus(request.params.id, "admin", "disabled", request.body.reason),
  );

  app.post(
    "/webhooks/:id/enable",
    {
      schema: {
        summary: "Enable a disabled, throttled or poll_only webhook endpoint",
        description: "`active` if its URL is verified and confirmed, `pending` otherwise.",
        params: endpointParams,
        body: reasonBodySchema,
        response: { 200: webhookEndpointSchema, ...problemResponses(...ADMIN_ERRORS, 413, 415) },
      },
    },
    async (request) => deps.store.setStatus(request.params.id, "admin", "active", request.body.reason),
  );
};
