/**
 * Partners, shops and credentials: the tenants and who may speak for them.
 * Pure: no I/O.
 */
import { z } from "zod";
import { credentialIdSchema, partnerIdSchema, shopIdSchema, storedTextSchema } from "./ids.ts";

export const PARTNER_STATES = ["normal", "throttled", "poll_only", "suspended"] as const;
export type PartnerState = (typeof PARTNER_STATES)[number];

/** Whether a partner's events are pushed (over MQTT, or replayed to its sessions) in this state. */
export const pushesEvents = (state: PartnerState): boolean => state !== "poll_only" && state !== "suspended";

export const CREDENTIAL_KINDS = ["backend", "device"] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

/** Who is calling: resolved from a secret (HTTP, MQTT password) or a client certificate. */
export interface Principal {
  credentialId: string;
  partnerId: string;
  kind: CredentialKind;
  /** Set for device credentials: the one shop they may see. */
  shopId: string | null;
}

/** Who moves a partner on the ladder, why, and whether the monitor must leave it there. */
export interface StateChange {
  /** `operator` (admin API) or `monitor` (the automatic ladder). */
  actor: string;
  reason: string;
  pinned: boolean;
}

/** One move on the ladder, as audited. */
export interface StateTransition {
  from: PartnerState;
  to: PartnerState;
  pinned: boolean;
  actor: string;
  reason: string;
  at: string;
}

const nameSchema = storedTextSchema(200).describe("Display name, 1 to 200 characters.");

export const createPartnerBodySchema = z.object({ id: partnerIdSchema, name: nameSchema }).strict();
export const createShopBodySchema = z.object({ id: shopIdSchema, name: nameSchema }).strict();

export const createCredentialBodySchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("backend") }).strict(),
  z.object({ kind: z.literal("device"), shop_id: shopIdSchema }).strict(),
]);
export type CreateCredentialBody = z.infer<typeof createCredentialBodySchema>;

export const partnerSchema = z
  .object({
    id: partnerIdSchema,
    name: z.string(),
    state: z.enum(PARTNER_STATES),
    head_seq: z.number().int().min(0),
    created_at: z.iso.datetime({ offset: true }),
  })
  .meta({ id: "Partner" });
export type Partner = z.infer<typeof partnerSchema>;

export const shopSchema = z
  .object({
    partner_id: partnerIdSchema,
    id: shopIdSchema,
    name: z.string(),
    created_at: z.iso.datetime({ offset: true }),
  })
  .meta({ id: "Shop" });
export type Shop = z.infer<typeof shopSchema>;

export const credentialSchema = z
  .object({
    id: credentialIdSchema,
    partner_id: partnerIdSchema,
    kind: z.enum(CREDENTIAL_KINDS),
    shop_id: shopIdSchema.nullable(),
    created_at: z.iso.datetime({ offset: true }),
    revoked_at: z.iso.datetime({ offset: true }).nullable(),
    cert_fingerprint: z
      .string()
      .nullable()
      .describe("SHA-256 fingerprint of a registered TLS client certificate, lower-case hex."),
  })
  .meta({ id: "Credential" });
export type Credential = z.infer<typeof credentialSchema>;
