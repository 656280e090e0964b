/**
 * What a failing webhook endpoint goes through: the retry schedule and the
 * ladder active → throttled → poll_only → disabled. Pure: the endpoint
 * worker (src/webhooks/endpoint-worker.ts) applies it.
 *
 * - Each failed attempt is retried after an exponential backoff with full
 *   jitter (`retry.initialMs` doubling up to `retry.maxMs`).
 * - `throttleAfter` consecutive failures: `throttled` (paced by a token
 *   bucket, retried on the same schedule).
 * - The same head-of-line event failing for `pollOnlyAfterMs`: `poll_only`:
 *   no pushes, one probe (that event) every `probeIntervalMs`; the partner
 *   reads the REST history meanwhile.
 * - Failing it for `retry.giveUpMs`: `disabled` (an operator re-enables it).
 * - 410 Gone: `disabled` at once. A 2xx, from any rung: `active`.
 * The ladder only climbs on failure: a worker that starts on a `poll_only`
 * endpoint (a restart, a new leader) keeps it there until a probe succeeds.
 */

import type { OrderEvent } from "../domain/events.ts";
import type { WebhookStatus, WebhookTarget } from "../domain/webhooks.ts";

export interface RetrySchedule {
  initialMs: number;
  maxMs: number;
  giveUpMs: number;
}

export interface LadderPolicy {
  retry: RetrySchedule;
  /** Consecutive failures before an endpoint is throttled. */
  throttleAfter: number;
  /** Failing the same event this long makes the endpoint poll_only. */
  pollOnlyAfterMs: number;
  /** A poll_only endpoint is sent one attempt this often. */
  probeIntervalMs: number;
}

/** The full-jitter delay before retry number `failures` (1-based). */
export const retryDelayMs = (failures: number, retry: RetrySchedule, random: () => number): number => {
  const ceiling = Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(failures - 1, 40));
  return Math.floor(random() * ceiling);
};

export const matchesFilter = (target: Pick<WebhookTarget, "shopId" | "types">, event: OrderEvent): boolean =>
  (target.shopId === null || target.shopId === event.shop_id) &&
  (target.types.length === 0 || target.types.includes(event.type));

const RUNG: Partial<Record<WebhookStatus, number>> = { active: 0, throttled: 1, poll_only: 2 };

export type FailureStep =
  | { action: "disable"; reason: string }
  /** Wait `delayMs`, then try the same event again; `status` is where the endpoint should now be. */
  | { action: "retry"; status: WebhookStatus; reason: string; delayMs: number };

/**
 * After a failed attempt: `failures` consecutive failures of this head-of-line event, the first
 * `failingForMs` ago; `last` describes the latest one (for reasons shown to people).
 */
export const afterFailure = (
  current: WebhookStatus,
  failure: { httpStatus: number | null; failures: number; failingForMs: number; last: string },
  policy: LadderPolicy,
  random: () => number,
): FailureStep => {
  if (failure.httpStatus === 410) return { action: "disable", reason: "the receiver answered 410 Gone" };
  const seconds = Math.round(failure.failingForMs / 1000);
  if (failure.failingForMs >= policy.retry.giveUpMs) {
    return {
      action: "disable",
      reason: `gave up: the same event failed for ${seconds} s (${failure.failures} attempts; last: ${failure.last})`,
    };
  }
  let status: WebhookStatus = current;
  let reason = "";
  const rung = RUNG[current] ?? 0;
  if (failure.failingForMs >= policy.pollOnlyAfterMs && rung < 2) {
    status = "poll_only";
    reason = `the same event failed for ${seconds} s (${failure.failures} attempts; last: ${failure.last}): no pushes, one probe every ${Math.round(policy.probeIntervalMs / 1000)} s; read GET /v1/events meanwhile`;
  } else if (failure.failures >= policy.throttleAfter && rung < 1) {
    status = "throttled";
    reason = `${failure.failures} consecutive failed deliveries (last: ${failure.last})`;
  }
  const delayMs =
    status === "poll_only" ? policy.probeIntervalMs : retryDelayMs(failure.failures, policy.retry, random);
  return { action: "retry", status, reason, delayMs };
};
