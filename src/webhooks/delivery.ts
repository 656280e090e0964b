/**
 * Webhook delivery: the log → each confirmed endpoint, signed, in seq order,
 * at least once.
 *
 * Shape, and why not DeliveryCore's partner pipeline: the core keys one
 * position per partner (the bridge's cursor, with its handover, poll_only and
 * shop cursors). A webhook endpoint needs a position of its own
 * (webhook_positions, moved back by a replay with a generation bump) and must
 * fail alone: one slow or dead endpoint may hold back neither MQTT nor another
 * endpoint of the same partner. So this is a small dispatcher with one worker
 * per endpoint, reusing the core's modules where they fit:
 * - leadership (src/delivery/leadership.ts) on a leader lock of its own
 *   (WEBHOOK_LOCK_KEY): one process delivers webhooks, a standby takes over;
 * - deadlines (src/delivery/deadlines.ts): a guard above the sender's own
 *   request timeout, so a stuck request can never stall a worker;
 * - a token bucket (src/delivery/token-bucket.ts) paces a `throttled` endpoint.
 *
 * Per endpoint (a worker):
 * - reads the partner's events after the endpoint's durable position; events
 *   outside its shop/types filter are passed over (the position moves past
 *   them), every other one is POSTed, in seq order, ONE request in flight:
 *   order is strict, the next event is sent only after the previous one got
 *   a 2xx;
 * - the position moves (compare and set against a replay) only past a 2xx;
 *   it never skips. A failed CAS means a replay moved it: re-read and go on
 *   from there;
 * - failure (non-2xx, network, timeout, refused by the SSRF guard): retried
 *   with exponential backoff and full jitter (`retry.initialMs` doubling to
 *   `retry.maxMs`); after `throttleAfter` consecutive failures the endpoint is
 *   `throttled`; failing the same head-of-line event for `retry.giveUpMs`
 *   disables it; a success returns a throttled endpoint to `active`;
 * - 410 Gone disables it at once.
 * Each attempt is recorded (bounded history); each status change is written
 * to the endpoint and announced (`announce`: the partner's MQTT status topic).
 *
 * Wake-ups: `committed(event)` (this process's commits), the doorbell (other
 * processes'), `endpointsChanged()` (the API in this process), and a sweep
 * every `sweepMs` (re-reads the endpoint list: created, confirmed, disabled,
 * deleted, URL changed, replayed in another process).
 *
 * The backoff clock lives in memory: after a restart or a leader change the
 * give-up time counts from the first failure seen by the new leader.
 */
import type { Logger } from "pino";
import { createDeadlines } from "../delivery/deadlines.ts";
import { createLeadership, type DeliveryRole } from "../delivery/leadership.ts";
import { createTokenBucket, type TokenBucket } from "../delivery/token-bucket.ts";
import type { DeliveryLog, DoorbellRing, LeaderLock } from "../domain/delivery.ts";
import type { OrderEvent } from "../domain/events.ts";
import {
  buildWebhookMessageId,
  type WebhookPosition,
  type WebhookStatus,
  type WebhookStore,
  type WebhookTarget,
} from "../domain/webhooks.ts";
import type { SendResult, WebhookSender } from "./sender.ts";

export interface RetrySchedule {
  initialMs: number;
  maxMs: number;
  giveUpMs: number;
}

/** An endpoint's status changed: tell the partner (its MQTT status topic). */
export interface WebhookStatusAnnouncement {
  partnerId: string;
  endpointId: string;
  status: WebhookStatus;
  reason: string;
  since: string;
}

export type WebhookOutcome = "delivered" | "failed" | "gone" | "refused" | "filtered";

export interface WebhookDeliveryOptions {
  store: WebhookStore;
  /** The event log (readAfter, onDoorbell). */
  events: Pick<DeliveryLog, "readAfter" | "onDoorbell">;
  sender: Pick<WebhookSender, "sendWebhook">;
  lock: LeaderLock;
  log: Logger;
  retry: RetrySchedule;
  /** The sender's request timeout; the worker's own guard is this plus a second. */
  timeoutMs: number;
  announce?: (announcement: WebhookStatusAnnouncement) => Promise<void>;
  onOutcome?: (partnerId: string, outcome: WebhookOutcome, count: number) => void;
  /** Consecutive failures before an endpoint is throttled (default 5). */
  throttleAfter?: number;
  /** Requests a second to a throttled endpoint (default 1). */
  throttledRatePerSecond?: number;
  /** Re-read the endpoint list this often (default 2 s). */
  sweepMs?: number;
  /** Events read per batch (default 100). */
  batchSize?: number;
  standbyPollMs?: number;
  random?: () => number;
}

export interface WebhookDelivery {
  readonly role: DeliveryRole;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Events this process committed. */
  committed(event: OrderEvent): void;
  /**
   * An endpoint was created, changed, confirmed, replayed or deleted in this process: re-read the
   * list, and that endpoint's worker (out of a backoff too) re-reads it and its position.
   */
  endpointsChanged(endpointId: string): void;
}

/** The full-jitter delay before retry number `failures` (1-based). */
export const retryDelayMs = (failures: number, retry: RetrySchedule, random: () => number): number => {
  const ceiling = Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(failures - 1, 40));
  return Math.floor(random() * ceiling);
};

export const matchesFilter = (target: Pick<WebhookTarget, "shopId" | "types">, event: OrderEvent): boolean =>
  (target.shopId === null || target.shopId === event.shop_id) &&
  (target.types.length === 0 || target.types.includes(event.type));

interface Worker {
  id: string;
  partnerId: string;
  /** Wakes the worker from waiting for events (and, when `urgent`, from a backoff). */
  wake(urgent: boolean): void;
  stop(): void;
  done: Promise<void>;
}

class StaleError extends Error {}

export const createWebhookDelivery = (options: WebhookDeliveryOptions): WebhookDelivery => {
  const { store, log } = options;
  const throttleAfter = options.throttleAfter ?? 5;
  const sweepMs = options.sweepMs ?? 2_000;
  const batchSize = options.batchSize ?? 100;
  const random = options.random ?? Math.random;
  const deadlines = createDeadlines(options.timeoutMs + 1_000);
  const workers = new Map<string, Worker>();
  /** Stopped workers not yet finished, by endpoint. */
  const retired = new Map<string, Promise<void>>();
  let sweepTimer: NodeJS.Timeout | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let sweeping: Promise<void> | undefined;
  let sweepAgain = false;

  const changeStatus = async (target: WebhookTarget, status: WebhookStatus, reason: string) => {
    const changed = await store.setStatus(target.id, "delivery", status, reason);
    log.warn(
      { endpoint: target.id, partner: target.partnerId, status: changed.status, reason },
      "webhook endpoint status changed",
    );
    await options
      .announce?.({
        partnerId: target.partnerId,
        endpointId: target.id,
        status: changed.status,
        reason,
        since: changed.updated_at,
      })
      .catch((error: unknown) =>
        log.warn({ err: error, endpoint: target.id }, "webhook status announcement failed"),
      );
    return changed.status;
  };

  const startWorker = (first: WebhookTarget, term: number, after: Promise<void>): Worker => {
    let stopped = false;
    let waiter: { resolve: () => void; urgentOnly: boolean } | undefined;
    let pending = false;
    const wait = (ms: number | undefined, urgentOnly: boolean) =>
      new Promise<void>((resolve) => {
        if (pending && !urgentOnly) {
          pending = false;
          resolve();
          return;
        }
        const timer = ms === undefined ? undefined : setTimeout(() => finish(), ms);
        const finish = () => {
          clearTimeout(timer);
          waiter = undefined;
          resolve();
        };
        waiter = { resolve: finish, urgentOnly };
      });
    const live = () => !stopped && leadership.isCurrent(term);
    let bucket: TokenBucket | undefined;
    /** The attempts' records and the position's commits, in order, behind the requests. */
    let writes: Promise<void> = Promise.resolve();
    const failures = { seq: -1, count: 0, firstAt: 0 };

    const send = async (target: WebhookTarget, event: OrderEvent): Promise<SendResult> => {
      if (target.status === "throttled") {
        bucket ??= createTokenBucket(options.throttledRatePerSecond ?? 1);
        while (live() && bucket.take(1) === 0) await wait(bucket.msPerToken, true);
      }
      const message = {
        id: buildWebhookMessageId(target.partnerId, event.seq),
        timestamp: new Date(),
        body: JSON.stringify(event),
      };
      const result = await deadlines
        .watch(options.sender.sendWebhook(target, message), () => new Error("webhook request deadline"))
        .catch(
          (error: unknown): SendResult => ({
            ok: false,
            status: null,
            latencyMs: options.timeoutMs,
            error: (error as Error).message,
            body: "",
            refused: false,
          }),
        );
      // Recorded behind the send, in order with the position's commits: the next request need not wait.
      const attempt = {
        kind: "delivery" as const,
        webhookId: message.id,
        seq: event.seq,
        status: result.status,
        latencyMs: result.latencyMs,
        error: result.error ?? null,
      };
      writes = writes.then(() =>
        store
          .recordAttempt(target.id, attempt)
          .catch((error: unknown) =>
            log.warn({ err: error, endpoint: target.id }, "could not record a webhook attempt"),
          ),
      );
      return result;
    };

    /** Handles a failed attempt; returns false when the endpoint no longer delivers. */
    const failed = async (target: WebhookTarget, seq: number, result: SendResult): Promise<boolean> => {
      const outcome: WebhookOutcome = result.status === 410 ? "gone" : result.refused ? "refused" : "failed";
      options.onOutcome?.(target.partnerId, outcome, 1);
      if (result.status === 410) {
        await changeStatus(target, "disabled", "the receiver answered 410 Gone");
        return false;
      }
      const now = Date.now();
      if (failures.seq !== seq) Object.assign(failures, { seq, count: 0, firstAt: now });
      failures.count++;
      if (now - failures.firstAt >= options.retry.giveUpMs) {
        await changeStatus(
          target,
          "disabled",
          `gave up: seq ${seq} failed for ${Math.round((now - failures.firstAt) / 1000)} s (${failures.count} attempts; last: ${result.error ?? result.status})`,
        );
        return false;
      }
      if (failures.count >= throttleAfter && target.status === "active") {
        target.status = await changeStatus(
          target,
          "throttled",
          `${failures.count} consecutive failed deliveries (last: ${result.error ?? result.status})`,
        );
        if (target.status !== "throttled") return false;
      }
      await wait(retryDelayMs(failures.count, options.retry, random), true);
      return live();
    };

    const succeeded = async (target: WebhookTarget): Promise<void> => {
      options.onOutcome?.(target.partnerId, "delivered", 1);
      failures.seq = -1;
      failures.count = 0;
      if (target.status === "throttled") {
        target.status = await changeStatus(target, "active", "delivered again");
        bucket = undefined;
      }
    };

    /** One batch: true when there may be more to do at once. */
    const runBatch = async (): Promise<boolean> => {
      let target: WebhookTarget;
      try {
        target = await store.target(first.id);
      } catch {
        return false; // deleted
      }
      if (target.status !== "active" && target.status !== "throttled") return false;
      let durable: WebhookPosition = await store.readPosition(target.id);
      const events = await options.events.readAfter(
        [{ partnerId: target.partnerId, afterSeq: durable.position }],
        batchSize,
      );
      if (events.length === 0) return false;
      // The position's compare-and-set runs behind the requests (queued after each 2xx, in order):
      // the next event is sent without waiting for it. A failed CAS (a replay) stops the batch.
      let stale = false;
      const commit = (seq: number) => {
        writes = writes.then(async () => {
          if (stale || seq <= durable.position) return;
          if (await store.commitPosition(target.id, durable, seq)) {
            durable = { position: seq, generation: durable.generation };
          } else stale = true;
        });
      };
      let passed = durable.position;
      try {
        for (const event of events) {
          if (!live() || restartBatch || stale) break;
          if (!matchesFilter(target, event)) {
            options.onOutcome?.(target.partnerId, "filtered", 1);
            passed = event.seq;
            continue;
          }
          // Events passed over before this one: durable now, not only after this one's 2xx.
          commit(passed);
          for (;;) {
            const result = await send(target, event);
            if (result.ok) break;
            if (!(await failed(target, event.seq, result))) return false;
            if (restartBatch) return true; // changed meanwhile: re-read the endpoint and position
          }
          await succeeded(target);
          passed = event.seq;
          commit(passed);
          // Back from throttled, it may have come back as pending (its URL changed meanwhile): stop.
          if (target.status !== "active" && target.status !== "throttled") return false;
        }
        commit(passed);
        return true;
      } finally {
        const pending = writes;
        writes = Promise.resolve();
        await pending;
        // biome-ignore lint/correctness/noUnsafeFinally: a replay moved the position: start again from it
        if (stale) throw new StaleError("replayed");
      }
    };

    let restartBatch = false;
    const run = async (): Promise<void> => {
      while (live()) {
        restartBatch = false;
        let more = false;
        try {
          more = await runBatch();
        } catch (error) {
          if (!(error instanceof StaleError)) {
            log.warn({ err: error, endpoint: first.id }, "webhook delivery batch failed; retrying");
            await wait(Math.min(options.retry.maxMs, 1_000), true);
          }
          more = true;
        }
        if (!live()) break;
        if (!more) await wait(undefined, false);
      }
    };

    const worker: Worker = {
      id: first.id,
      partnerId: first.partnerId,
      wake(urgent) {
        if (urgent) restartBatch = true;
        if (waiter && (urgent || !waiter.urgentOnly)) waiter.resolve();
        else if (!waiter) pending = true;
      },
      stop() {
        stopped = true;
        waiter?.resolve();
      },
      done: Promise.resolve(),
    };
    // A worker stopped for this endpoint may still have a request in flight: one at a time, always.
    worker.done = after
      .then(run)
      .catch((error: unknown) => log.error({ err: error, endpoint: first.id }, "webhook worker ended"));
    return worker;
  };

  /** Re-reads the deliverable endpoints: starts workers for new ones, stops those gone, wakes the rest. */
  const sweep = (): Promise<void> => {
    if (sweeping) {
      sweepAgain = true;
      return sweeping;
    }
    const term = leadership.term;
    sweeping = (async () => {
      do {
        sweepAgain = false;
        if (leadership.role !== "leader") return;
        const targets = await store.listDeliverable();
        if (!leadership.isCurrent(term)) return;
        const seen = new Set<string>();
        for (const target of targets) {
          seen.add(target.id);
          const found = workers.get(target.id);
          if (found) found.wake(false);
          else {
            const after = retired.get(target.id) ?? Promise.resolve();
            workers.set(target.id, startWorker(target, term, after));
          }
        }
        for (const [id, worker] of workers) {
          if (seen.has(id)) continue;
          worker.stop();
          workers.delete(id);
          const done = worker.done.finally(() => {
            if (retired.get(id) === done) retired.delete(id);
          });
          retired.set(id, done);
        }
      } while (sweepAgain);
    })()
      .catch((error: unknown) => log.warn({ err: error }, "webhook endpoint sweep failed"))
      .finally(() => {
        sweeping = undefined;
      });
    return sweeping;
  };

  const wakePartner = (partnerId: string) => {
    for (const worker of workers.values()) if (worker.partnerId === partnerId) worker.wake(false);
  };
  const onRing = (ring: DoorbellRing) => {
    if (ring.partnerIds === "all") for (const worker of workers.values()) worker.wake(false);
    else for (const partnerId of ring.partnerIds) wakePartner(partnerId);
  };

  const stopWorkers = async () => {
    clearInterval(sweepTimer);
    sweepTimer = undefined;
    const running = [...workers.values()];
    workers.clear();
    for (const worker of running) worker.stop();
    await Promise.all([...running.map((worker) => worker.done), ...retired.values()]);
  };

  const leadership = createLeadership({
    lock: options.lock,
    log,
    standbyPollMs: options.standbyPollMs ?? 5_000,
    onRole: (role) => log.info({ role }, "webhook delivery role"),
    prepare: async () => {},
    begin: () => {
      sweepTimer = setInterval(() => void sweep(), sweepMs);
      sweepTimer.unref();
      void sweep();
    },
    stepDown: stopWorkers,
  });

  return {
    get role() {
      return leadership.role;
    },
    async start() {
      unlisten = await options.events.onDoorbell(onRing);
      await leadership.start();
    },
    async stop() {
      await leadership.stop();
      await unlisten?.();
    },
    committed(event) {
      if (leadership.role === "leader") wakePartner(event.partner_id);
    },
    endpointsChanged(endpointId) {
      if (leadership.role !== "leader") return;
      workers.get(endpointId)?.wake(true);
      void sweep();
    },
  };
};
