/**
 * Webhook endpoints: their settings, signing secrets, status and audit log
 * (migration 0006). Their delivery position and attempts are
 * src/store/webhook-deliveries.ts; this store exposes both as one
 * WebhookStore.
 *
 * Invariants kept here, in one place:
 * - a URL change clears `verified_at` and `confirmed_at` and returns the
 *   endpoint to `pending`; only both together make it `active` again;
 * - every change writes one audit row in the same transaction;
 * - the position moves back only through `replay` (which bumps its
 *   generation), forward only through the delivery state's compare and set.
 */
import { randomBytes } from "node:crypto";
import { BrewcastError } from "../domain/errors.ts";
import {
  DELIVERING_STATUSES,
  isReadyToDeliver,
  WEBHOOK_LIMITS,
  type WebhookActor,
  type WebhookEndpoint,
  type WebhookStatus,
  type WebhookStore,
} from "../domain/webhooks.ts";
import type { Db, Queryable } from "./db.ts";
import { createWebhookDeliveryState, insertAttempt } from "./webhook-deliveries.ts";
import { type EndpointRow, SELECT_ENDPOINT, toEndpoint, toTarget } from "./webhook-rows.ts";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

export const newWebhookEndpointId = (): string => {
  let id = "we_";
  for (const byte of randomBytes(20)) id += BASE32[byte & 31];
  return id;
};

/** A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes. */
export const newWebhookSecret = (): string => `whsec_${randomBytes(32).toString("base64")}`;

const audit = (
  tx: Queryable,
  row: { id: string; partner_id: string },
  actor: WebhookActor,
  action: string,
  urls: { old?: string | null; new?: string | null } = {},
  detail: Record<string, unknown> = {},
) =>
  tx.query(
    `INSERT INTO webhook_audit (endpoint_id, partner_id, actor, action, old_url, new_url, detail)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [row.id, row.partner_id, actor, action, urls.old ?? null, urls.new ?? null, JSON.stringify(detail)],
  );

/** The row, locked for update; NOT_FOUND when absent or another partner's (null partner: any). */
const lockEndpoint = async (tx: Queryable, partnerId: string | null, id: string): Promise<EndpointRow> => {
  const [row] = await tx.query<EndpointRow>(
    `SELECT e.*, p.position FROM webhook_endpoints e
     LEFT JOIN webhook_positions p ON p.endpoint_id = e.id
     WHERE e.id = $1 AND ($2::text IS NULL OR e.partner_id = $2) FOR UPDATE OF e`,
    [id, partnerId],
  );
  if (!row) throw new BrewcastError("NOT_FOUND", `no webhook endpoint ${id}`);
  return row;
};

const requireShop = async (tx: Queryable, partnerId: string, shopId: string) => {
  const rows = await tx.query("SELECT 1 FROM shops WHERE partner_id = $1 AND id = $2", [partnerId, shopId]);
  if (rows.length === 0) throw new BrewcastError("NOT_FOUND", `no shop ${shopId}`);
};

/** pending ⇄ active as the verification and confirmation of the current URL say; other states stay. */
const settledStatus = (row: EndpointRow): WebhookStatus => {
  if (row.status === "disabled" || row.status === "throttled" || row.status === "poll_only")
    return row.status;
  return isReadyToDeliver(row) ? "active" : "pending";
};

export const createWebhookStore = (db: Db): WebhookStore => {
  const deliveries = createWebhookDeliveryState(db);
  const get: WebhookStore["get"] = async (partnerId, id) => {
    const [row] = await db.query<EndpointRow>(
      `${SELECT_ENDPOINT} WHERE e.id = $1 AND ($2::text IS NULL OR e.partner_id = $2)`,
      [id, partnerId],
    );
    if (!row) throw new BrewcastError("NOT_FOUND", `no webhook endpoint ${id}`);
    return toEndpoint(row);
  };

  /** Writes `changes` to the row, settles its status, audits, and returns the endpoint. */
  const change = async (
    tx: Queryable,
    row: EndpointRow,
    changes: Partial<EndpointRow>,
    actor: WebhookActor,
    action: string,
    detail: Record<string, unknown> = {},
  ): Promise<WebhookEndpoint> => {
    const next = { ...row, ...changes } as EndpointRow;
    next.status = changes.status ?? settledStatus(next);
    if (next.status !== row.status && changes.status_reason === undefined) {
      next.status_reason = next.status === "active" ? null : row.status_reason;
    }
    const [saved] = await tx.query<EndpointRow>(
      `UPDATE webhook_endpoints SET url = $2, shop_id = $3, types = $4, description = $5, status = $6,
         status_reason = $7, secret = $8, previous_secret = $9, previous_secret_expires_at = $10,
         verified_at = $11, confirmed_at = $12, confirmed_by = $13, updated_at = now()
       WHERE id = $1 RETURNING *`,
      [
        row.id,
        next.url,
        next.shop_id,
        next.types,
        next.description,
        next.status,
        next.status_reason,
        next.secret,
        next.previous_secret,
        next.previous_secret_expires_at,
        next.verified_at,
        next.confirmed_at,
        next.confirmed_by,
      ],
    );
    const urlChanged = next.url !== row.url;
    await audit(
      tx,
      row,
      actor,
      action,
      { old: row.url, new: urlChanged ? next.url : row.url },
      {
        ...detail,
        ...(next.status !== row.status ? { status: { from: row.status, to: next.status } } : {}),
      },
    );
    return toEndpoint({ ...saved!, position: row.position });
  };

  return {
    get,

    async create(partnerId, actor, body) {
      const secret = newWebhookSecret();
      const endpoint = await db.transaction(async (tx) => {
        const [partner] = await tx.query<{ head_seq: number }>(
          "SELECT head_seq FROM partners WHERE id = $1",
          [partnerId],
        );
        if (!partner) throw new BrewcastError("NOT_FOUND", `no partner ${partnerId}`);
        // One creator at a time per partner, so the limit holds (without locking the partner row,
        // which every order write takes).
        await tx.query("SELECT pg_advisory_xact_lock(hashtext('webhook_endpoints:' || $1))", [partnerId]);
        const [count] = await tx.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM webhook_endpoints WHERE partner_id = $1",
          [partnerId],
        );
        if ((count?.n ?? 0) >= WEBHOOK_LIMITS.endpointsPerPartner) {
          throw new BrewcastError(
            "WEBHOOK_LIMIT_REACHED",
            `a partner may have at most ${WEBHOOK_LIMITS.endpointsPerPartner} webhook endpoints`,
          );
        }
        if (body.shop_id !== undefined) await requireShop(tx, partnerId, body.shop_id);
        const id = newWebhookEndpointId();
        const [row] = await tx.query<EndpointRow>(
          `INSERT INTO webhook_endpoints (id, partner_id, url, shop_id, types, description, secret)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
          [id, partnerId, body.url, body.shop_id ?? null, body.types ?? [], body.description ?? "", secret],
        );
        // A new endpoint is owed the events committed from now on (a replay reaches older ones).
        await tx.query("INSERT INTO webhook_positions (endpoint_id, position) VALUES ($1, $2)", [
          id,
          partner.head_seq,
        ]);
        await audit(tx, row!, actor, "create", { new: body.url });
        return toEndpoint({ ...row!, position: partner.head_seq });
      });
      return { endpoint, secret };
    },

    async list(partnerId) {
      const rows = await db.query<EndpointRow>(
        `${SELECT_ENDPOINT} WHERE e.partner_id = $1 ORDER BY e.created_at, e.id`,
        [partnerId],
      );
      return rows.map(toEndpoint);
    },

    update(partnerId, id, actor, body) {
      return db.transaction(async (tx) => {
        const row = await lockEndpoint(tx, partnerId, id);
        const changes: Partial<EndpointRow> = {};
        if (body.url !== undefined && body.url !== row.url) {
          Object.assign(changes, {
            url: body.url,
            verified_at: null,
            confirmed_at: null,
            confirmed_by: null,
          });
          // A disabled endpoint stays disabled; any other returns to pending until verified and confirmed.
          if (row.status !== "disabled") changes.status = "pending";
        }
        if (body.shop_id !== undefined) {
          if (body.shop_id !== null) await requireShop(tx, partnerId, body.shop_id);
          changes.shop_id = body.shop_id;
        }
        if (body.types !== undefined) changes.types = body.types;
        if (body.description !== undefined) changes.description = body.description;
        return change(tx, row, changes, actor, "update", {
          fields: Object.keys(body).sort(),
        });
      });
    },

    async remove(partnerId, id, actor) {
      await db.transaction(async (tx) => {
        const row = await lockEndpoint(tx, partnerId, id);
        await tx.query("DELETE FROM webhook_endpoints WHERE id = $1", [id]);
        await audit(tx, row, actor, "delete", { old: row.url });
      });
    },

    async rotateSecret(partnerId, id, actor, overlapSeconds) {
      const secret = newWebhookSecret();
      const endpoint = await db.transaction(async (tx) => {
        const row = await lockEndpoint(tx, partnerId, id);
        return change(
          tx,
          row,
          {
            secret,
            previous_secret: row.secret,
            previous_secret_expires_at: new Date(Date.now() + overlapSeconds * 1000),
          },
          actor,
          "rotate_secret",
          { overlap_seconds: overlapSeconds },
        );
      });
      return { endpoint, secret };
    },

    replay(partnerId, id, actor, fromSeq) {
      return db.transaction(async (tx) => {
        const row = await lockEndpoint(tx, partnerId, id);
        const [partner] = await tx.query<{ pruned_through_seq: number; head_seq: number }>(
          "SELECT pruned_through_seq, head_seq FROM partners WHERE id = $1",
          [row.partner_id],
        );
        const target = fromSeq - 1;
        if (target < partner!.pruned_through_seq) {
          throw new BrewcastError(
            "CURSOR_EXPIRED",
            `events up to seq ${partner!.pruned_through_seq} are past retention: replay from ${partner!.pruned_through_seq + 1} or later, and reload older state with GET /v1/orders`,
          );
        }
        const position = row.position ?? 0;
        if (target > position) {
          throw new BrewcastError("VALIDATION_FAILED", "a replay only moves back", [
            {
              field: "body.from_seq",
              message: `must be at most ${position + 1} (the endpoint's position + 1)`,
            },
          ]);
        }
        await tx.query(
          `UPDATE webhook_positions SET position = $2, generation = generation + 1, updated_at = now()
           WHERE endpoint_id = $1`,
          [id, target],
        );
        await audit(tx, row, actor, "replay", {}, { from_seq: fromSeq, previous_position: position });
        return toEndpoint({ ...row, position: target });
      });
    },

    async listAttempts(partnerId, id, limit) {
      await get(partnerId, id);
      return deliveries.listAttempts(id, limit);
    },

    async listAudit(id) {
      const rows = await db.query<{
        at: Date;
        actor: string;
        action: string;
        old_url: string | null;
        new_url: string | null;
        detail: Record<string, unknown>;
      }>(
        "SELECT at, actor, action, old_url, new_url, detail FROM webhook_audit WHERE endpoint_id = $1 ORDER BY id",
        [id],
      );
      if (rows.length === 0) await get(null, id);
      return rows.map((row) => ({ ...row, at: row.at.toISOString() }));
    },

    confirm(id, actor, url) {
      return db.transaction(async (tx) => {
        const row = await lockEndpoint(tx, null, id);
        if (row.url !== url) {
          throw new BrewcastError(
            "WEBHOOK_URL_MISMATCH",
            "the endpoint's URL is not the one given: it changed since it was checked",
          );
        }
        return change(tx, row, { confirmed_at: new Date(), confirmed_by: actor }, actor, "confirm");
      });
    },

    recordVerification(id, url, ok, attempt) {
      return db.transaction(async (tx) => {
        const row = await lockEndpoint(tx, null, id);
        await insertAttempt(tx, id, attempt);
        if (row.url !== url) return toEndpoint(row);
        const changes: Partial<EndpointRow> = ok ? { verified_at: new Date() } : {};
        return change(tx, row, changes, "verification", ok ? "verified" : "verification_failed", {
          ...(attempt.status !== null ? { http_status: attempt.status } : {}),
          ...(attempt.error ? { error: attempt.error } : {}),
        });
      });
    },

    setStatus(id, actor, status, reason) {
      return db.transaction(async (tx) => {
        const row = await lockEndpoint(tx, null, id);
        // "active" means: deliver again if the URL is verified and confirmed; else it is pending.
        const next: WebhookStatus =
          status === "active" ? (isReadyToDeliver(row) ? "active" : "pending") : status;
        return change(tx, row, { status: next, status_reason: reason }, actor, "set_status", { reason });
      });
    },

    async target(id, now = new Date()) {
      const [row] = await db.query<EndpointRow>(`${SELECT_ENDPOINT} WHERE e.id = $1`, [id]);
      if (!row) throw new BrewcastError("NOT_FOUND", `no webhook endpoint ${id}`);
      return toTarget(row, now);
    },

    async listDeliverable(partnerId, now = new Date()) {
      const rows = await db.query<EndpointRow>(
        `${SELECT_ENDPOINT} WHERE e.status = ANY($1::text[]) AND ($2::text IS NULL OR e.partner_id = $2)
         ORDER BY e.partner_id, e.id`,
        [DELIVERING_STATUSES, partnerId ?? null],
      );
      return rows.map((row) => toTarget(row, now));
    },

    readPosition: deliveries.readPosition,
    commitPosition: deliveries.commitPosition,
    recordAttempt: deliveries.recordAttempt,
    recordDeliveries: deliveries.recordDeliveries,
    trimAttempts: deliveries.trimAttempts,
  };
};
