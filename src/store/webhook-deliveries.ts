/**
 * Webhook delivery state (migration 0006): each endpoint's durable position
 * and its bounded history of attempts. The endpoints themselves (settings,
 * secrets, status, audit) are src/store/webhooks.ts.
 *
 * - The position moves back only through the endpoints' `replay` (which bumps
 *   its generation), forward only here, by compare and set.
 * - The delivery loop writes its attempts in groups (`recordDeliveries`: one
 *   statement for the attempts of several endpoints and the positions that
 *   cover them) and
 *   trims the history now and then (`trimAttempts`), not per attempt: between
 *   two trims an endpoint may hold a few more than WEBHOOK_LIMITS.attemptsKept
 *   rows; the API never lists more than that.
 */
import { BrewcastError } from "../domain/errors.ts";
import {
  type AttemptInput,
  type DeliveryWrite,
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
 * The attempts of several endpoints and their positions' compare and set, in one statement (one
 * round trip, one commit). The attempts are written whether or not a position moves (they
 * happened). Returns the endpoints whose position moved. One writer process (the leader) sends
 * these one at a time; the rows are sorted all the same.
 */
const RECORD_DELIVERIES = {
  name: "webhook_record_deliveries",
  text: `
  WITH recorded AS (
    INSERT INTO webhook_attempts (endpoint_id, at, kind, webhook_id, seq, status, latency_ms, error)
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::bigint[], $6::int[],
      $7::int[], $8::text[])
  ), moved AS (
    UPDATE webhook_positions p SET position = m.next, updated_at = now()
    FROM unnest($9::text[], $10::bigint[], $11::bigint[], $12::bigint[]) AS m(endpoint_id, expected, generation, next)
    WHERE p.endpoint_id = m.endpoint_id AND p.position = m.expected AND p.generation = m.generation
      AND m.next >= p.position
    RETURNING p.endpoint_id
  )
  SELECT endpoint_id FROM moved`,
};

export interface WebhookDeliveryState {
  readPosition(id: string): Promise<WebhookPosition>;
  commitPosition(id: string, expected: WebhookPosition, next: number): Promise<boolean>;
  recordAttempt(id: string, attempt: AttemptInput): Promise<void>;
  recordDeliveries(writes: readonly DeliveryWrite[]): Promise<Set<string>>;
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

  async recordDeliveries(writes) {
    const sorted = [...writes].sort((x, y) => (x.endpointId < y.endpointId ? -1 : 1));
    const now = new Date();
    const attempts = sorted.flatMap((w) => w.attempts.map((a) => ({ id: w.endpointId, a })));
    const moves = sorted.flatMap((w) => (w.move ? [{ id: w.endpointId, ...w.move }] : []));
    if (attempts.length === 0 && moves.length === 0) return new Set();
    const rows = await db.query<{ endpoint_id: string }>(RECORD_DELIVERIES, [
      attempts.map((r) => r.id),
      attempts.map((r) => r.a.at ?? now),
      attempts.map((r) => r.a.kind),
      attempts.map((r) => r.a.webhookId),
      attempts.map((r) => r.a.seq),
      attempts.map((r) => r.a.status),
      attempts.map((r) => Math.round(r.a.latencyMs)),
      attempts.map((r) => r.a.error?.slice(0, ERROR_CHARS) ?? null),
      moves.map((m) => m.id),
      moves.map((m) => m.expected.position),
      moves.map((m) => m.expected.generation),
      moves.map((m) => m.next),
    ]);
    return new Set(rows.map((row) => row.endpoint_id));
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
