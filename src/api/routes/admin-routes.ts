/**
 * Admin routes under /admin/v1: partners, shops, credentials, the kill switch.
 */

import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { BrewcastError } from "../../domain/errors.ts";
import { credentialIdSchema, partnerIdSchema, storedTextSchema } from "../../domain/ids.ts";
import {
  createCredentialBodySchema,
  createPartnerBodySchema,
  createShopBodySchema,
  credentialSchema,
  PARTNER_STATES,
  partnerSchema,
  shopSchema,
} from "../../domain/partners.ts";
import type { CredentialsPort, PartnersPort, ReadDeliveryStatus } from "../ports.ts";
import { problemResponses } from "../problem.ts";

export interface AdminRoutesDeps {
  partners: PartnersPort;
  credentials: CredentialsPort;
  deliveryStatus: ReadDeliveryStatus;
  /** MQTT clients of the partner on this process's broker; null without one. */
  connectedClients(partnerId: string): { backend: number; device: number } | null;
}

const partnerParams = z.object({ partner: partnerIdSchema });
const credentialParams = z.object({ id: credentialIdSchema });

const fingerprintSchema = z
  .string()
  .transform((value) => value.replaceAll(":", "").toLowerCase())
  .pipe(z.string().regex(/^[0-9a-f]{64}$/, "must be a SHA-256 fingerprint: 64 hex digits, colons allowed"))
  .describe("SHA-256 fingerprint of the client certificate (`openssl x509 -noout -fingerprint -sha256`).");

const createdCredentialSchema = credentialSchema
  .extend({
    secret: z
      .string()
      .describe("Shown once; stored only as a hash. The MQTT password and HTTP bearer token."),
  })
  .meta({ id: "CreatedCredential" });

const transitionSchema = z.object({
  from: z.enum(PARTNER_STATES),
  to: z.enum(PARTNER_STATES),
  pinned: z.boolean(),
  actor: z.string().describe("`operator` (admin API) or `monitor` (the automatic ladder)."),
  reason: z.string(),
  at: z.iso.datetime({ offset: true }),
});

const healthSchema = z
  .object({
    partner_id: partnerIdSchema,
    state: z.enum(PARTNER_STATES),
    pinned: z.boolean().describe("An operator pinned the state; the monitor leaves it alone."),
    head_seq: z.number().int(),
    published_seq: z.number().int().describe("Last seq the bridge published (the broker accepted)."),
    lag_events: z.number().int(),
    lag_seconds: z.number().describe("Age of the oldest event not yet accepted by the broker; 0 when none."),
    connected_clients: z
      .object({ backend: z.number().int(), device: z.number().int() })
      .nullable()
      .describe("MQTT clients on this process's broker; null when no broker runs here."),
    transitions: z.array(transitionSchema).describe("The latest moves on the ladder, newest first."),
  })
  .meta({ id: "PartnerHealth" });

const pinBodySchema = z
  .object({
    state: z.enum(PARTNER_STATES).describe("The state to pin the partner to."),
    reason: storedTextSchema(500).describe("Why: written to the audit log."),
  })
  .strict();

const ADMIN_ERRORS = [400, 401, 404, 429, 503] as const;

const adminRoutes: FastifyPluginAsyncZod<AdminRoutesDeps> = async (app, deps) => {
  app.post(
    "/partners",
    {
      schema: {
        summary: "Create a partner",
        body: createPartnerBodySchema,
        response: { 201: partnerSchema, ...problemResponses(...ADMIN_ERRORS, 409, 413, 415) },
      },
    },
    async (request, reply) =>
      reply.code(201).send(await deps.partners.create(request.body.id, request.body.name)),
  );

  app.get(
    "/partners",
    {
      schema: {
        summary: "List partners",
        response: {
          200: z.object({ partners: z.array(partnerSchema) }),
          ...problemResponses(...ADMIN_ERRORS),
        },
      },
    },
    async () => ({ partners: await deps.partners.list() }),
  );

  app.get(
    "/partners/:partner",
    {
      schema: {
        summary: "Get a partner",
        params: partnerParams,
        response: { 200: partnerSchema, ...problemResponses(...ADMIN_ERRORS) },
      },
    },
    async (request) => deps.partners.get(request.params.partner),
  );

  app.post(
    "/partners/:partner/shops",
    {
      schema: {
        summary: "Create a shop",
        params: partnerParams,
        body: createShopBodySchema,
        response: { 201: shopSchema, ...problemResponses(...ADMIN_ERRORS, 409, 413, 415) },
      },
    },
    async (request, reply) =>
      reply
        .code(201)
        .send(await deps.partners.createShop(request.params.partner, request.body.id, request.body.name)),
  );

  app.get(
    "/partners/:partner/shops",
    {
      schema: {
        summary: "List a partner's shops",
        params: partnerParams,
        response: { 200: z.object({ shops: z.array(shopSchema) }), ...problemResponses(...ADMIN_ERRORS) },
      },
    },
    async (request) => ({ shops: await deps.partners.listShops(request.params.partner) }),
  );

  app.post(
    "/partners/:partner/credentials",
    {
      schema: {
        summary: "Create a credential",
        description: "`backend` sees the whole partner; `device` sees one shop. The secret is returned once.",
        params: partnerParams,
        body: createCredentialBodySchema,
        response: { 201: createdCredentialSchema, ...problemResponses(...ADMIN_ERRORS, 413, 415) },
      },
    },
    async (request, reply) => {
      const { credential, secret } = await deps.credentials.create(request.params.partner, request.body);
      return reply.code(201).send({ ...credential, secret });
    },
  );

  app.get(
    "/partners/:partner/credentials",
    {
      schema: {
        summary: "List a partner's credentials (never their secrets)",
        params: partnerParams,
        response: {
          200: z.object({ credentials: z.array(credentialSchema) }),
          ...problemResponses(...ADMIN_ERRORS),
        },
      },
    },
    async (request) => {
      await deps.partners.get(request.params.partner);
      return { credentials: await deps.credentials.list(request.params.partner) };
    },
  );

  app.delete(
    "/credentials/:id",
    {
      schema: {
        summary: "Revoke a credential",
        description:
          "Its MQTT connections close at once; HTTP requests with it get 401. Revoking twice is harmless.",
        params: credentialParams,
        response: { 200: credentialSchema, ...problemResponses(...ADMIN_ERRORS) },
      },
    },
    async (request) => deps.credentials.revoke(request.params.id),
  );

  app.post(
    "/credentials/:id/certificates",
    {
      schema: {
        summary: "Register a TLS client certificate for a credential (mutual TLS login)",
        params: credentialParams,
        body: z.object({ fingerprint_sha256: fingerprintSchema }).strict(),
        response: { 200: credentialSchema, ...problemResponses(...ADMIN_ERRORS, 409, 413, 415) },
      },
    },
    async (request) =>
      deps.credentials.registerCertificate(request.params.id, request.body.fingerprint_sha256),
  );

  app.post(
    "/partners/:partner/suspend",
    {
      schema: {
        summary: "Suspend a partner (the kill switch)",
        description: "Disconnects its MQTT clients and refuses it (CONNACK 5, HTTP 403) until resumed.",
        params: partnerParams,
        response: { 200: partnerSchema, ...problemResponses(...ADMIN_ERRORS) },
      },
    },
    async (request) => {
      return deps.partners.setState(request.params.partner, "suspended");
    },
  );

  app.post(
    "/partners/:partner/resume",
    {
      schema: {
        summary: "Resume a suspended partner",
        params: partnerParams,
        response: { 200: partnerSchema, ...problemResponses(...ADMIN_ERRORS) },
      },
    },
    async (request) => {
      return deps.partners.setState(request.params.partner, "normal");
    },
  );

  app.put(
    "/partners/:partner/state",
    {
      schema: {
        summary: "Pin a partner's state on the degradation ladder",
        description:
          "The monitor leaves a pinned partner alone until unpinned. Pinning `suspended` is the kill switch.",
        params: partnerParams,
        body: pinBodySchema,
        response: { 200: partnerSchema, ...problemResponses(...ADMIN_ERRORS, 413, 415) },
      },
    },
    async (request) => {
      return deps.partners.setState(request.params.partner, request.body.state, {
        actor: "operator",
        reason: request.body.reason,
        pinned: true,
      });
    },
  );

  app.delete(
    "/partners/:partner/state/pin",
    {
      schema: {
        summary: "Unpin a partner's state: the monitor may move it again",
        params: partnerParams,
        response: { 200: partnerSchema, ...problemResponses(...ADMIN_ERRORS) },
      },
    },
    async (request) => {
      const current = await deps.partners.get(request.params.partner);
      return deps.partners.setState(current.id, current.state, {
        actor: "operator",
        reason: "unpinned",
        pinned: false,
      });
    },
  );

  app.get(
    "/partners/:partner/health",
    {
      schema: {
        summary: "A partner's delivery health",
        params: partnerParams,
        response: { 200: healthSchema, ...problemResponses(...ADMIN_ERRORS) },
      },
    },
    async (request) => {
      const partner = await deps.partners.get(request.params.partner);
      const status = await deps.deliveryStatus(partner.id);
      if (!status) throw new BrewcastError("NOT_FOUND", `no partner ${partner.id}`);
      return {
        partner_id: partner.id,
        state: status.state,
        pinned: status.pinned,
        head_seq: status.headSeq,
        published_seq: status.publishedSeq,
        lag_events: status.lagEvents,
        lag_seconds: status.lagSeconds,
        connected_clients: deps.connectedClients(partner.id),
        transitions: await deps.partners.audit(partner.id, 10),
      };
    },
  );
};

export default adminRoutes;
