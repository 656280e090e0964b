/**
 * Webhook delivery state (migration 0006): each endpoint's durable position
 * and its bounded history of attempts. The endpoints themselves (settings,
 * secrets, status, audit) are src/store/webhooks.ts.
 *
 * - The position moves back only through the endpoints' `replay` (which bumps
 *   its generation), forward only here, by compare and set.
 * - The delivery loop writes its attempts in batches (`recordDeliveries`: one
 *   statement for several attempts and the position that covers them) and
 *   trims the history now and then (`trimAttempts`), not per attempt: between
 *   two trims an endpoint may hold a few more than WEBHOOK_LIMITS.attemptsKept
 *   rows; the API never lists more than that.
 */
import { BrewcastError } from "../domain/errors.ts";
import {
  type AttemptInput,
  WEBHOOK_LIMITS,
  type WebhookAttempt,
  type WebhookPosition,
} from "../domain/webhooks.ts";
import type { Db, Queryable } from "./db.ts";

const ERROR_CHARS = 500;

const TRIM = `
  DELETE FROM webhook_attempts a
  USING unnest($1::text[]) AS e(id),
    LATERAL (SELECT id FROM webhook_attempts WHERE endpoint_id = e.id ORDER BY id DESC OFFSET $2 LIMIT 1) cut
  WHERE a.endpoint_id = e.id AND a.id <= cut.id`;

/** Appends one attempt and trims that endpoint's history at once (verification requests: rare). */
export const insertAttempt = async (tx: Queryable, id: string, attempt: AttemptInput): Promise<void> => {
  await tx.query(
    `INSERT INTO webhook_attempts (endpoint_id, at, kind, webhook_id, seq, status, latency_ms, error)
     VALUES ($1, coalesce($2::timestamptz, now()), $3, $4, $5, $6, $7, $8)`,
    [
      id,
      attempt.at ?? null,
      attempt.kind,
      attempt.webhookId,
      attempt.seq,
      attempt.status,
      Math.round(attempt.latencyMs),
      attempt.error?.slice(0, ERROR_CHARS) ?? null,
    ],
  );
  await tx.query(TRIM, [[id], WEBHOOK_LIMITS.attemptsKept]);
};

/**
 * Several attempts of one endpoint and, when `move` is given, its position's compare and set, in
 * one statement (one round trip, one commit). The attempts are written whether or not the position
 * moves (they happened). Returns false only when `move` was given and a replay had moved the
 * position meanwhile.
 */
const RECORD_DELIVERIES = {
  name: "webhook_record_deliveries",
  text: `
  WITH recorded AS (
    INSERT INTO webhook_attempts (endpoint_id, at, kind, webhook_id, seq, status, latency_ms, error)
    SELECT $1, a.at, a.kind, a.webhook_id, a.seq, a.status, a.latency_ms, a.error
    FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::bigint[], $6::int[], $7::int[], $8::text[])
      AS a(at, kind, webhook_id, seq, status, latency_ms, error)
    RETURNING 1
  ), moved AS (
    UPDATE webhook_positions SET position = $11, updated_at = now()
    WHERE $11::bigint IS NOT NULL AND endpoint_id = $1 AND position = $9 AND generation = $10 AND $11 >= position
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM moved)::int AS moved, (SELECT count(*) FROM recorded)::int AS recorded`,
};

export interface WebhookDeliveryState {
  readPosition(id: string): Promise<WebhookPosition>;
  commitPosition(id: string, expected: WebhookPosition, next: number): Promise<boolean>;
  recordAttempt(id: string, attempt: AttemptInput): Promise<void>;
  recordDeliveries(
    id: string,
    attempts: readonly AttemptInput[],
    move?: { expected: WebhookPosition; next: number },
  ): Promise<boolean>;
  trimAttempts(ids: readonly string[]): Promise<void>;
  listAttempts(id: string, limit?: number): Promise<WebhookAttempt[]>;
}

export const createWebhookDeliveryState = (db: Db): WebhookDeliveryState => ({
  async readPosition(id) {
    const [row] = await db.query<{ position: number; generation: number }>(
      "SELECT position, generation FROM webhook_positions WHERE endpoint_id = $1",
      [id],
    );
    if (!row) throw new BrewcastError("NOT_FOUND", `no webhook endpoint ${id}`);
    return row;
  },

  async commitPosition(id, expected, next) {
    const rows = await db.query(
      `UPDATE webhook_positions SET position = $4, updated_at = now()
       WHERE endpoint_id = $1 AND position = $2 AND generation = $3 AND $4 >= position RETURNING 1`,
      [id, expected.position, expected.generation, next],
    );
    return rows.length === 1;
  },

  async recordAttempt(id, attempt) {
    await db.transaction((tx) => insertAttempt(tx, id, attempt));
  },

  async recordDeliveries(id, attempts, move) {
    const now = new Date();
    const [row] = await db.query<{ moved: number }>(RECORD_DELIVERIES, [
      id,
      attempts.map((a) => a.at ?? now),
      attempts.map((a) => a.kind),
      attempts.map((a) => a.webhookId),
      attempts.map((a) => a.seq),
      attempts.map((a) => a.status),
      attempts.map((a) => Math.round(a.latencyMs)),
      attempts.map((a) => a.error?.slice(0, ERROR_CHARS) ?? null),
      move?.expected.position ?? null,
      move?.expected.generation ?? null,
      move?.next ?? null,
    ]);
    return move === undefined || row?.moved === 1;
  },

  async trimAttempts(ids) {
    if (ids.length > 0) await db.query(TRIM, [ids, WEBHOOK_LIMITS.attemptsKept]);
  },

  async listAttempts(id, limit = WEBHOOK_LIMITS.attemptsKept) {
    const rows = await db.query<{
      at: Date;
      kind: "delivery" | "verification";
      webhook_id: string;
      seq: number | null;
      status: number | null;
      latency_ms: number;
      error: string | null;
    }>(
      `SELECT at, kind, webhook_id, seq, status, latency_ms, error FROM webhook_attempts
       WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2`,
      [id, Math.min(limit, WEBHOOK_LIMITS.attemptsKept)],
    );
    return rows.map((row) => ({ ...row, at: row.at.toISOString() }));
  },
});
