/**
 * Admin routes under /admin/v1: partners, shops, credentials, the kill switch.
 */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { credentialIdSchema, partnerIdSchema } from "../../domain/ids.ts";
import {
  createCredentialBodySchema,
  createPartnerBodySchema,
  createShopBodySchema,
  credentialSchema,
  PARTNER_STATES,
  partnerSchema,
  shopSchema,
} from "../../domain/partners.ts";
import type { CredentialStore } from "../../store/credentials.ts";
import type { PartnerStore } from "../../store/partners.ts";
import { problemResponses } from "../problem.ts";

/** What the running broker and bridge know about a partner, when they run in this process. */
export interface PartnerLiveStatus {
  connected_clients: { backend: number; device: number } | null;
  published_seq: number | null;
}

export interface AdminRoutesDeps {
  partners: PartnerStore;
  credentials: CredentialStore;
  liveStatus(partnerId: string): PartnerLiveStatus;
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

const healthSchema = z
  .object({
    partner_id: partnerIdSchema,
    state: z.enum(PARTNER_STATES),
    head_seq: z.number().int(),
    published_seq: z
      .number()
      .int()
      .nullable()
      .describe("Last seq the bridge published; null when no bridge runs here."),
    lag_events: z.number().int().nullable(),
    connected_clients: z.object({ backend: z.number().int(), device: z.number().int() }).nullable(),
  })
  .meta({ id: "PartnerHealth" });

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
      const partner = await deps.partners.setState(request.params.partner, "suspended");
      deps.credentials.clearCache();
      return partner;
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
      const partner = await deps.partners.setState(request.params.partner, "normal");
      deps.credentials.clearCache();
      return partner;
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
      const live = deps.liveStatus(partner.id);
      return {
        partner_id: partner.id,
        state: partner.state,
        head_seq: partner.head_seq,
        published_seq: live.published_seq,
        lag_events: live.published_seq === null ? null : partner.head_seq - live.published_seq,
        connected_clients: live.connected_clients,
      };
    },
  );
};

export default adminRoutes;
