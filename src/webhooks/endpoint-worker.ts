/**
 * One webhook endpoint's worker: its events, in seq order, ONE request in
 * flight (the next event is sent only after the previous one got a 2xx), at
 * least once. The dispatcher (src/webhooks/delivery.ts) starts and stops it.
 *
 * - Reads the partner's events after its position (kept in memory; read from
 *   the database at start, after a replay or an error). Events this process
 *   committed are handed over (`offer`) and used when they follow the
 *   position without a gap, which saves the log read at a live pace.
 * - An idle worker (waiting for events, nothing to re-read, status active)
 *   that is offered the next event in line starts its request inside `offer`,
 *   in the committer's turn of the event loop: the loop then takes that
 *   request's result as if it had sent it (`started`). Still one request in
 *   flight: `offer` starts one only while the loop is parked, and the loop
 *   settles it before it sends, re-reads or ends.
 * - Events outside the endpoint's shop/types filter are passed over; every
 *   other one is POSTed; a failure walks the ladder (src/webhooks/retry-policy.ts).
 * - Attempts and the position are written behind the requests, grouped
 *   (src/webhooks/delivery-writes.ts): the position never passes an event
 *   that was not answered 2xx (or filtered out).
 */
import type { Logger } from "pino";
import type { Deadlines } from "../delivery/deadlines.ts";
import { createTokenBucket, type TokenBucket } from "../delivery/token-bucket.ts";
import type { DeliveryLog } from "../domain/delivery.ts";
import type { OrderEvent } from "../domain/events.ts";
import {
  buildWebhookMessageId,
  DELIVERING_STATUSES,
  type WebhookStatus,
  type WebhookStore,
  type WebhookTarget,
} from "../domain/webhooks.ts";
import type { DeliveryWriter } from "./delivery-writes.ts";
import { afterFailure, type LadderPolicy, matchesFilter } from "./retry-policy.ts";
import type { SendResult, WebhookSender } from "./sender.ts";

export type WebhookOutcome = "delivered" | "failed" | "gone" | "refused" | "filtered";

/** What every worker shares (the dispatcher's options and services). */
export interface WorkerContext {
  store: WebhookStore;
  events: Pick<DeliveryLog, "readAfter">;
  sender: Pick<WebhookSender, "sendWebhook">;
  log: Logger;
  deadlines: Deadlines;
  /** The grouped writes of attempts and positions, shared by the workers. */
  writer: DeliveryWriter;
  policy: LadderPolicy;
  timeoutMs: number;
  throttledRatePerSecond: number;
  batchSize: number;
  random: () => number;
  onOutcome?: (partnerId: string, outcome: WebhookOutcome, count: number) => void;
  /** Writes the status (and tells the partner); returns the status as stored. */
  changeStatus(target: WebhookTarget, status: WebhookStatus, reason: string): Promise<WebhookStatus>;
}

export interface EndpointWorker {
  id: string;
  partnerId: string;
  /**
   * Wakes the worker from waiting for events. `events`: new ones may be in the log. `sweep`: also
   * re-read the endpoint and its position, once the writes are drained (another process may have
   * changed or replayed it). `changed` (in this process): also
   * out of a backoff, and re-read the endpoint and its position.
   */
  wake(reason: "events" | "sweep" | "changed"): void;
  /** An event this process committed, for the worker to send without reading the log. */
  offer(event: OrderEvent): void;
  stop(): void;
  done: Promise<void>;
}

const isDelivering = (status: WebhookStatus) => DELIVERING_STATUSES.includes(status);

export const startEndpointWorker = (
  ctx: WorkerContext,
  first: WebhookTarget,
  live: () => boolean,
  after: Promise<void>,
): EndpointWorker => {
  const { store, log } = ctx;
  const id = first.id;
  let stopped = false;
  let waiter: { resolve: () => void; urgentOnly: boolean } | undefined;
  let pending = false;
  let restartBatch = false;
  let refreshTarget = false;
  let reread = true;
  const running = () => !stopped && live();
  const wait = (ms: number | undefined, urgentOnly: boolean) =>
    new Promise<void>((resolve) => {
      if (!urgentOnly && (pending || offeredRun() > 0)) {
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

  const writes = ctx.writer.forEndpoint(id);
  let target = first;
  /** The highest seq sent 2xx or passed over (durable or about to be). */
  let position = 0;
  /** Events committed here (or carried by a doorbell), in seq order, not yet behind the position. */
  let offered: OrderEvent[] = [];
  let bucket: TokenBucket | undefined;
  const failures = { seq: -1, count: 0, firstAt: 0 };
  /** The request `offer` started for the next event while the loop was parked, until the loop takes it. */
  let started: { seq: number; result: Promise<SendResult> } | undefined;

  const send = async (event: OrderEvent): Promise<SendResult> => {
    if (target.status === "throttled") {
      bucket ??= createTokenBucket(ctx.throttledRatePerSecond);
      while (running() && bucket.take(1) === 0) await wait(bucket.msPerToken, true);
    }
    const message = {
      id: buildWebhookMessageId(target.partnerId, event.seq),
      timestamp: new Date(),
      body: JSON.stringify(event),
    };
    const result = await ctx.deadlines
      .watch(ctx.sender.sendWebhook(target, message), () => new Error("webhook request deadline"))
      .catch(
        (error: unknown): SendResult => ({
          ok: false,
          status: null,
          latencyMs: ctx.timeoutMs,
          error: (error as Error).message,
          body: "",
          refused: false,
        }),
      );
    writes.attempt({
      at: new Date(),
      kind: "delivery",
      webhookId: message.id,
      seq: event.seq,
      status: result.status,
      latencyMs: result.latencyMs,
      error: result.error ?? null,
    });
    return result;
  };

  /** Handles a failed attempt; returns false when the endpoint no longer delivers. */
  const failed = async (seq: number, result: SendResult): Promise<boolean> => {
    const outcome: WebhookOutcome = result.status === 410 ? "gone" : result.refused ? "refused" : "failed";
    ctx.onOutcome?.(target.partnerId, outcome, 1);
    const now = Date.now();
    if (failures.seq !== seq) Object.assign(failures, { seq, count: 0, firstAt: now });
    failures.count++;
    const step = afterFailure(
      target.status,
      {
        httpStatus: result.status,
        failures: failures.count,
        failingForMs: now - failures.firstAt,
        last: String(result.error ?? result.status),
      },
      ctx.policy,
      ctx.random,
    );
    // A status change is shown with the attempts that explain it: write those first (rare).
    const attemptsFirst = () => writes.drain().catch(() => undefined);
    if (step.action === "disable") {
      await attemptsFirst();
      target.status = await ctx.changeStatus(target, "disabled", step.reason);
      return false;
    }
    if (step.status !== target.status) {
      await attemptsFirst();
      target.status = await ctx.changeStatus(target, step.status, step.reason);
      if (!isDelivering(target.status)) return false;
    }
    await wait(step.delayMs, true);
    return running();
  };

  const succeeded = async (): Promise<void> => {
    ctx.onOutcome?.(target.partnerId, "delivered", 1);
    failures.seq = -1;
    failures.count = 0;
    if (target.status === "throttled" || target.status === "poll_only") {
      target.status = await ctx.changeStatus(target, "active", "delivered again");
      bucket = undefined;
    }
  };

  /**
   * A request `offer` started and the batch did not take (stopped, or the endpoint is to be re-read):
   * waits for it, so that no other request starts meanwhile, and moves the position if it was a 2xx.
   * A failure is only recorded (its attempt): the event is still next and is sent again.
   */
  const finishStarted = async (): Promise<void> => {
    if (!started) return;
    const { seq, result } = started;
    started = undefined;
    if ((await result).ok && seq === position + 1) {
      position = seq;
      writes.settle(position);
      await succeeded();
    }
  };

  /** The result of the request `offer` started for this event, if it did. */
  const takeStarted = (event: OrderEvent): Promise<SendResult> | undefined => {
    if (started?.seq !== event.seq) return undefined;
    const { result } = started;
    started = undefined;
    return result;
  };

  /**
   * From `offer`: starts the request for the next event at once when the loop is parked waiting
   * for events and would send it as it is (nothing to re-read, active, inside the filter).
   */
  const startIfParked = (): void => {
    if (!waiter || waiter.urgentOnly || started || !running()) return;
    if (pending || reread || refreshTarget || restartBatch || writes.stale || target.status !== "active")
      return;
    if (offeredRun() === 0) return;
    const next = offered[0]!;
    if (!matchesFilter(target, next)) return;
    started = { seq: next.seq, result: send(next) };
  };

  /** How many offered events follow the position without a gap (dropping those behind it). */
  const offeredRun = (): number => {
    if (offered.length > 0 && offered[0]!.seq <= position) offered = offered.filter((e) => e.seq > position);
    let run = 0;
    while (run < offered.length && offered[run]!.seq === position + run + 1) run++;
    return run;
  };

  /**
   * The next events after the position: the offered ones when they follow it without a gap, else
   * a read of the log. `more`: worth looking again at once. Not after a short read or when the
   * offered run is used up: every event committed later wakes the worker (`offer` here, the
   * doorbell from other processes), and a wake during a batch is kept (`pending`) for the next wait.
   */
  const nextEvents = async (): Promise<{ events: OrderEvent[]; more: boolean }> => {
    const run = offeredRun();
    if (run > 0) {
      const events = offered.splice(0, Math.min(run, ctx.batchSize));
      return { events, more: run > ctx.batchSize };
    }
    pending = false; // a wake from now on asks for another read
    const events = await ctx.events.readAfter(
      [{ partnerId: target.partnerId, afterSeq: position }],
      ctx.batchSize,
    );
    return { events, more: events.length >= ctx.batchSize };
  };

  /** One batch: true when there may be more to do at once. */
  const runBatch = async (): Promise<boolean> => {
    const { events, more } = await nextEvents();
    if (events.length === 0) return false;
    for (const event of events) {
      if (!running() || restartBatch || writes.stale) break;
      if (!matchesFilter(target, event)) {
        ctx.onOutcome?.(target.partnerId, "filtered", 1);
        position = event.seq;
        writes.settle(position);
        continue;
      }
      for (;;) {
        const result = await (takeStarted(event) ?? send(event));
        if (result.ok) break;
        if (!(await failed(event.seq, result))) return false;
        if (restartBatch) return true; // changed meanwhile: re-read the endpoint and position
      }
      position = event.seq;
      writes.settle(position);
      await succeeded();
      // Back from throttled, it may have come back as pending (its URL changed meanwhile): stop.
      if (!isDelivering(target.status)) return false;
    }
    return more || offeredRun() > 0;
  };

  /** Before a batch: the endpoint and the position, re-read when something may have moved them. */
  const prepare = async (): Promise<boolean> => {
    if (reread || writes.stale || refreshTarget) await finishStarted();
    if (reread || writes.stale) {
      reread = false;
      refreshTarget = true;
      await writes.drain();
      const durable = await store.readPosition(id);
      writes.reset(durable);
      position = durable.position;
    }
    if (refreshTarget) {
      refreshTarget = false;
      const fresh = await store.target(id);
      if (fresh.status !== target.status || fresh.url !== target.url) bucket = undefined;
      target = fresh;
    }
    return isDelivering(target.status);
  };

  const loop = async (): Promise<void> => {
    while (running()) {
      restartBatch = false;
      let more = false;
      let delivering = true;
      try {
        delivering = await prepare();
        more = delivering && (await runBatch());
      } catch (error) {
        if ((error as { code?: string }).code === "NOT_FOUND") return; // deleted: the sweep stops us
        log.warn({ err: error, endpoint: id }, "webhook delivery batch failed; retrying");
        reread = true;
        await wait(Math.min(ctx.policy.retry.maxMs, 1_000), true);
        more = true;
      }
      await finishStarted();
      if (!running()) break;
      // Not delivering (disabled, pending a confirmation): offered events and wakes cannot be
      // acted on, and a wait they end at once would spin without ever yielding to a timer (the
      // sweep that stops this worker among them). Look again on a change, a stop, or in a second.
      if (!delivering) await wait(1_000, true);
      else if (!more) await wait(undefined, false);
    }
  };
  // Stopped while parked, a request `offer` started may still be in flight: the worker ends after it.
  const run = () => loop().finally(finishStarted);

  const worker: EndpointWorker = {
    id,
    partnerId: first.partnerId,
    wake(reason) {
      const urgent = reason === "changed";
      if (urgent) {
        restartBatch = true;
        reread = true;
      } else if (reason === "sweep") {
        // Another process may have changed the endpoint or replayed it (a replay only shows here
        // as a failed compare and set, and an idle worker makes none): re-read both.
        refreshTarget = true;
        reread = true;
      }
      // The log is read again (even after a backoff) before the worker waits for events.
      pending = true;
      if (waiter && (urgent || !waiter.urgentOnly)) waiter.resolve();
    },
    offer(event) {
      if (event.seq <= position) return;
      if (offered.length >= ctx.batchSize) {
        offered.shift();
        pending = true; // dropped: the log has it
      }
      let at = offered.length;
      while (at > 0 && offered[at - 1]!.seq > event.seq) at--;
      if (offered[at - 1]?.seq !== event.seq) offered.splice(at, 0, event);
      // No read asked for: the event is here. (One out of order waits for the one before it,
      // which this process committed too and hands over, or a doorbell announces.)
      if (waiter && !waiter.urgentOnly && offeredRun() > 0) {
        startIfParked();
        waiter.resolve();
      }
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
    .then(() => writes.drain())
    .catch((error: unknown) => log.error({ err: error, endpoint: id }, "webhook worker ended"))
    .finally(() => writes.close());
  return worker;
};
