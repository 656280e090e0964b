/**
 * Webhook delivery: the log → each confirmed endpoint, signed, in seq order,
 * at least once. This file is the dispatcher; one worker per endpoint
 * (src/webhooks/endpoint-worker.ts) does the sending, the ladder is
 * src/webhooks/retry-policy.ts, the grouped database writes
 * src/webhooks/delivery-writes.ts.
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
 * Wake-ups: `committed(event)` (this process's commits: the event is handed
 * to the partner's workers), the doorbell (other processes'),
 * `endpointsChanged()` (the API in this process), and a sweep every
 * `sweepMs` (re-reads the endpoint list: created, confirmed, disabled,
 * deleted, URL changed, replayed in another process).
 *
 * The backoff clock lives in memory: after a restart or a leader change the
 * give-up time counts from the first failure seen by the new leader.
 */
import type { Logger } from "pino";
import { createDeadlines } from "../delivery/deadlines.ts";
import { createLeadership, type DeliveryRole } from "../delivery/leadership.ts";
import type { DeliveryLog, DoorbellRing, LeaderLock } from "../domain/delivery.ts";
import type { OrderEvent } from "../domain/events.ts";
import type { WebhookStatus, WebhookStore, WebhookTarget } from "../domain/webhooks.ts";
import { createDeliveryWriter } from "./delivery-writes.ts";
import {
  type EndpointWorker,
  startEndpointWorker,
  type WebhookOutcome,
  type WorkerContext,
} from "./endpoint-worker.ts";
import type { RetrySchedule } from "./retry-policy.ts";
import type { WebhookSender } from "./sender.ts";

export type { WebhookOutcome } from "./endpoint-worker.ts";
export type { RetrySchedule } from "./retry-policy.ts";

/** An endpoint's status changed: tell the partner (its MQTT status topic). */
export interface WebhookStatusAnnouncement {
  partnerId: string;
  endpointId: string;
  status: WebhookStatus;
  reason: string;
  since: string;
}

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
  /** Failing the same event this long makes an endpoint poll_only (default 6 h). */
  pollOnlyAfterMs?: number;
  /** A poll_only endpoint is probed this often (default 1 h). */
  probeIntervalMs?: number;
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

export const createWebhookDelivery = (options: WebhookDeliveryOptions): WebhookDelivery => {
  const { store, log } = options;
  const sweepMs = options.sweepMs ?? 2_000;
  const workers = new Map<string, EndpointWorker>();
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

  const context: WorkerContext = {
    store,
    events: options.events,
    sender: options.sender,
    log,
    deadlines: createDeadlines(options.timeoutMs + 1_000),
    writer: createDeliveryWriter({ store, log }),
    policy: {
      retry: options.retry,
      throttleAfter: options.throttleAfter ?? 5,
      pollOnlyAfterMs: options.pollOnlyAfterMs ?? 6 * 3_600_000,
      probeIntervalMs: options.probeIntervalMs ?? 3_600_000,
    },
    timeoutMs: options.timeoutMs,
    throttledRatePerSecond: options.throttledRatePerSecond ?? 1,
    batchSize: options.batchSize ?? 100,
    random: options.random ?? Math.random,
    ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
    changeStatus,
  };
  const startWorker = (first: WebhookTarget, term: number, after: Promise<void>) =>
    startEndpointWorker(context, first, () => leadership.isCurrent(term), after);

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
          if (found) found.wake("sweep");
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

  const offer = (event: OrderEvent) => {
    for (const worker of workers.values()) if (worker.partnerId === event.partner_id) worker.offer(event);
  };
  const onRing = (ring: DoorbellRing) => {
    // Events a ring carries save the workers a read (used only when they follow a position).
    for (const event of ring.events) offer(event);
    for (const worker of workers.values()) {
      if (ring.partnerIds === "all" || ring.partnerIds.includes(worker.partnerId)) worker.wake("events");
    }
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
      if (leadership.role === "leader") offer(event);
    },
    endpointsChanged(endpointId) {
      if (leadership.role !== "leader") return;
      workers.get(endpointId)?.wake("changed");
      void sweep();
    },
  };
};
