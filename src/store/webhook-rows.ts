/** A webhook endpoint's row (with its position) and how the API and the delivery loop see it. */
import type { WebhookEndpoint, WebhookStatus, WebhookTarget } from "../domain/webhooks.ts";

export interface EndpointRow extends Record<string, unknown> {
  id: string;
  partner_id: string;
  url: string;
  shop_id: string | null;
  types: string[];
  description: string;
  status: WebhookStatus;
  status_reason: string | null;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
  verified_at: Date | null;
  confirmed_at: Date | null;
  confirmed_by: string | null;
  created_at: Date;
  updated_at: Date;
  position: number | null;
}

export const SELECT_ENDPOINT = `
  SELECT e.*, p.position FROM webhook_endpoints e
  LEFT JOIN webhook_positions p ON p.endpoint_id = e.id`;

export const toEndpoint = (row: EndpointRow): WebhookEndpoint => ({
  id: row.id,
  partner_id: row.partner_id,
  url: row.url,
  shop_id: row.shop_id,
  types: row.types as WebhookEndpoint["types"],
  description: row.description,
  status: row.status,
  status_reason: row.status_reason,
  verified_at: row.verified_at?.toISOString() ?? null,
  confirmed_at: row.confirmed_at?.toISOString() ?? null,
  previous_secret_expires_at: row.previous_secret_expires_at?.toISOString() ?? null,
  position: row.position ?? 0,
  created_at: row.created_at.toISOString(),
  updated_at: row.updated_at.toISOString(),
});

export const toTarget = (row: EndpointRow, now: Date): WebhookTarget => ({
  id: row.id,
  partnerId: row.partner_id,
  url: row.url,
  shopId: row.shop_id,
  types: row.types,
  status: row.status,
  secrets:
    row.previous_secret && row.previous_secret_expires_at && row.previous_secret_expires_at > now
      ? [row.secret, row.previous_secret]
      : [row.secret],
});
