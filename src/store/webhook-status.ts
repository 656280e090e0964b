/**
 * Every webhook endpoint's status and lag (events of its partner after its
 * position, filtered or not), for /metrics in any process.
 */
import type { WebhookStatus } from "../domain/webhooks.ts";
import type { Db } from "./db.ts";

export interface WebhookEndpointStatus {
  partnerId: string;
  endpointId: string;
  status: WebhookStatus;
  lagEvents: number;
}

export const readWebhookStatus = async (db: Db): Promise<WebhookEndpointStatus[]> => {
  const rows = await db.query<{ id: string; partner_id: string; status: WebhookStatus; lag: number }>(
    `SELECT e.id, e.partner_id, e.status, greatest(0, p.head_seq - coalesce(wp.position, 0))::int AS lag
     FROM webhook_endpoints e
     JOIN partners p ON p.id = e.partner_id
     LEFT JOIN webhook_positions wp ON wp.endpoint_id = e.id
     ORDER BY e.partner_id, e.id`,
  );
  return rows.map((row) => ({
    partnerId: row.partner_id,
    endpointId: row.id,
    status: row.status,
    lagEvents: row.lag,
  }));
};
