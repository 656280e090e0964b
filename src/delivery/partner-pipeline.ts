/**
 * One partner's pipeline: reads its events after its position (from the
 * handover or the log), hands them to the channel in seq order with at most
 * `batchSize` messages in flight, settles them in order, moves its position
 * only past what the channel accepted, announces the position (coalesced)
 * and its ladder state, takes a throttled partner's events from a token
 * bucket, and on a failure backs off alone. The core (delivery-core.ts)
 * decides when a pipeline runs; a pipeline runs once at a time.
 *
 * Imports domain and this folder only.
 */
import type { Logger } from "pino";
import type { DeliveryLog, PartnerCursors } from "../domain/delivery.ts";
import type { OrderEvent } from "../domain/events.ts";
import { type PartnerState, pushesEvents } from "../domain/partners.ts";
import type { Channel } from "./channel.ts";
import type { Deadlines } from "./deadlines.ts";
import type { Handover } from "./handover.ts";
import { createInOrderSettlement, type InOrderSettlement } from "./in-order-settlement.ts";
import { createPartnerPosition, type PartnerPosition } from "./partner-position.ts";
import { createTokenBucket, type TokenBucket } from "./token-bucket.ts";

export interface DeliveryEvents {
  role: ["starting" | "leader" | "standby" | "stopped"];
  /** A batch was accepted by the channel, with every batch before it, and its position moved (committed within 100 ms). */
  published: [{ partnerId: string; fromSeq: number; toSeq: number; count: number; pushed: boolean }];
  /** The position was announced again for an idle partner. */
  watermark: [{ partnerId: string; seq: number }];
  /** A partner's delivery or read failed; it retries alone after `retryInMs`. */
  "partner-error": [{ partnerId: string; error: Error; retryInMs: number }];
}

export interface PipelineSettings {
  batchSize: number;
  throttleRatePerSecond: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  publishTimeoutMs: number;
}

export interface PipelineDeps {
  log: Logger;
  source: Pick<DeliveryLog, "readAfter">;
  channel: Channel;
  handover: Handover;
  deadlines: Deadlines;
  settings: PipelineSettings;
  isCurrent(term: number): boolean;
  /** Puts the pipeline in the core's ready queue (after a back-off or a held announcement). */
  enqueue(pipeline: PartnerPipeline): void;
  emit<K extends keyof DeliveryEvents>(name: K, ...args: DeliveryEvents[K]): boolean;
}

/**
 * The position is announced at most this often per partner (and this long after the last
 * batch at the latest); a partner that was quiet gets it right after its batch. Each MQTT
 * cursor message costs the broker about what an event costs, and a busy partner touches several
 * shops: at 250 ms they outnumbered the events and took a fifth of the process's CPU. A cursor
 * that trails by a second only tells a device a little late that it missed nothing: the events
 * themselves carry seq and prev_shop_seq for gaps.
 */
export const ANNOUNCE_COALESCE_MS = 1_000;

export class DeliveryTimeoutError extends Error {
  constructor(channel: string, what: string, ms: number) {
    super(`${channel} did not accept ${what} within ${ms} ms`);
    this.name = "DeliveryTimeoutError";
  }
}

const describeBatch = (partnerId: string, events: readonly OrderEvent[]): string =>
  events.length === 1
    ? `partner ${partnerId}'s event ${events[0]!.seq}`
    : `partner ${partnerId}'s ${events.length} events ${events[0]!.seq}–${events[events.length - 1]!.seq}`;

export class PartnerPipeline {
  readonly position: PartnerPosition;
  readonly #settlement: InOrderSettlement = createInOrderSettlement();
  readonly #bucket: TokenBucket;
  running = false;
  /** Events were committed that may not have been delivered yet. */
  dirty = false;
  /** The position must be announced for every shop (a watermark). */
  watermarkDue = false;
  /** The ladder state must be (re)announced. */
  #stateDue = true;
  #stateSince = new Date().toISOString();
  #failures = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Brings the pipeline back when the announcement it held back is due. */
  #announceTimer: NodeJS.Timeout | undefined;
  /** The highest seq known to be committed (handed over or read). */
  #knownHeadSeq: number;
  /**
   * The last seq handed to the channel in this run (never behind the position): the next batch
   * starts after it while the ones before it wait to be accepted.
   */
  #sentSeq: number;

  constructor(
    cursors: PartnerCursors,
    private readonly deps: PipelineDeps,
  ) {
    this.position = createPartnerPosition(cursors);
    this.#bucket = createTokenBucket(deps.settings.throttleRatePerSecond);
    this.#knownHeadSeq = cursors.headSeq;
    this.#sentSeq = cursors.published.seq;
  }

  get partnerId(): string {
    return this.position.cursors.partnerId;
  }

  /** Waiting out a back-off: the core does not queue it before the retry timer does. */
  get backingOff(): boolean {
    return this.#retryTimer !== undefined;
  }

  /** An event was committed: kept for the next batch (see handover.ts). */
  keep(event: OrderEvent): void {
    this.#knownHeadSeq = Math.max(this.#knownHeadSeq, event.seq);
    this.deps.handover.keep(event, this.position.cursors.published.seq);
  }

  /** New events: wakes a run waiting for its deliveries to settle. */
  markDirty(): void {
    this.dirty = true;
    this.#settlement.wake();
  }

  /**
   * The partner moved on the ladder: delivery changes from its next batch on (the caller marks
   * it dirty). Returns false if it had not moved.
   */
  setState(state: PartnerState): boolean {
    const cursors = this.position.cursors;
    if (cursors.state === state) return false;
    this.position.cursors = { ...cursors, state };
    this.#stateSince = new Date().toISOString();
    this.#stateDue = true;
    this.#bucket.refill();
    return true;
  }

  clearTimers(): void {
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#announceTimer);
  }

  async run(term: number): Promise<void> {
    const { deps } = this;
    const settlement = this.#settlement;
    const partnerId = this.partnerId;
    // Nothing is in flight between runs: this one starts where the channel last accepted.
    this.#sentSeq = this.position.cursors.published.seq;
    settlement.reset();
    try {
      if (this.#stateDue && deps.isCurrent(term)) {
        this.#stateDue = false;
        await this.#watch(
          deps.channel.announceState(this.position.cursors, this.#stateSince),
          `partner ${partnerId}'s state`,
        );
      }
      let throttledForMs = 0;
      while (deps.isCurrent(term) && !settlement.halted) {
        if (this.dirty) {
          this.dirty = false;
          throttledForMs = await this.#sendBacklog(term);
          if (throttledForMs > 0) break;
        } else if (settlement.pending > 0) await settlement.nextChange();
        else break;
      }
      await settlement.allSettled();
      if (throttledForMs > 0) {
        // Throttled and out of tokens: come back when one has been refilled.
        this.dirty = true;
        this.#retryLater(term, throttledForMs);
        return;
      }
      const position = this.position;
      if (position.unannounced > 0 && deps.isCurrent(term)) {
        const wait = position.announcedAt + ANNOUNCE_COALESCE_MS - Date.now();
        if (wait <= 0) {
          this.#announcePending(term);
          await settlement.allSettled();
        } else this.#announceLater(term, wait);
      }
      if (this.watermarkDue && deps.isCurrent(term)) {
        this.watermarkDue = false;
        await this.#announce([...position.cursors.shops.keys()], term);
        deps.emit("watermark", { partnerId, seq: position.cursors.published.seq });
      }
      this.#failures = 0;
    } catch (error) {
      // The batches still in flight settle first: the next run starts from what was accepted.
      await settlement.allSettled().catch(() => undefined);
      if (!deps.isCurrent(term)) return;
      this.#failures++;
      this.dirty = true;
      const { backoffInitialMs, backoffMaxMs } = deps.settings;
      const retryInMs = Math.min(backoffInitialMs * 2 ** (this.#failures - 1), backoffMaxMs);
      deps.log.warn(
        { err: error, partner: partnerId, retryInMs, failures: this.#failures },
        "partner delivery backing off",
      );
      deps.emit("partner-error", { partnerId, error: error as Error, retryInMs });
      this.#retryLater(term, retryInMs);
    }
  }

  /**
   * Hands the partner's committed events to the channel, batch after batch, without waiting for
   * acceptance between batches: the channel keeps their order, and a batch that waited for the
   * one before it to be accepted waited a turn or two of the event loop, several milliseconds
   * under load. At most a batch's worth of messages is in flight, announcements included.
   * Returns how long to wait when a throttled partner ran out of tokens (0 otherwise).
   */
  async #sendBacklog(term: number): Promise<number> {
    const { deps } = this;
    const settlement = this.#settlement;
    const partnerId = this.partnerId;
    while (deps.isCurrent(term) && !settlement.halted) {
      const room = deps.settings.batchSize - settlement.pendingCost;
      if (room <= 0) {
        await settlement.nextChange();
        continue;
      }
      const allowed = this.position.cursors.state === "throttled" ? this.#bucket.take(room) : room;
      if (allowed === 0) return this.#bucket.msPerToken;
      const handed = deps.handover.take(partnerId, this.#sentSeq, allowed);
      const events =
        handed.length > 0
          ? handed
          : await deps.source.readAfter([{ partnerId, afterSeq: this.#sentSeq }], allowed);
      // Unused tokens go back to a throttled partner's bucket.
      if (this.position.cursors.state === "throttled") this.#bucket.giveBack(allowed - events.length);
      if (events.length === 0 || !deps.isCurrent(term) || settlement.halted) return 0;
      this.#sendBatch(events, term);
      // A short batch from the log means drained; from the handover, only if nothing later is known.
      const drained = handed.length > 0 ? this.#sentSeq >= this.#knownHeadSeq : events.length < allowed;
      if (drained) return 0;
    }
    return 0;
  }

  /** Hands a batch to the channel; the position moves once it and every batch before it were accepted. */
  #sendBatch(events: OrderEvent[], term: number): void {
    const { deps, position } = this;
    const cursors = position.cursors;
    const partnerId = cursors.partnerId;
    const last = events[events.length - 1]!;
    const push = pushesEvents(cursors.state);
    this.#sentSeq = last.seq;
    // Poll-only: the events are not pushed, but the position moves so clients see the head and poll.
    const accepted = push
      ? this.#watch(deps.channel.deliver(cursors, events), () => describeBatch(partnerId, events))
      : Promise.resolve();
    this.#settlement.add(accepted, events.length, () => {
      const previous = position.cursors.published.seq;
      // The durable cursor is committed off the hot path (cursor-commits.ts), the announcement
      // coalesced: a durable cursor that trails only means re-delivering after a crash, never a gap.
      position.accept(events);
      deps.emit("published", {
        partnerId,
        fromSeq: previous + 1,
        toSeq: last.seq,
        count: events.length,
        pushed: push,
      });
      if (Date.now() - position.announcedAt >= ANNOUNCE_COALESCE_MS) this.#announcePending(term);
    });
  }

  /** Announces what was accepted so far, handed over behind what is in flight; on failure it stays due. */
  #announcePending(term: number): void {
    const position = this.position;
    const shopIds = position.takeUnannounced(Date.now());
    this.#settlement.add(this.#announce(shopIds, term), shopIds.length + 1, undefined, () =>
      position.restoreUnannounced(shopIds),
    );
  }

  #announce(shopIds: string[], term: number): Promise<void> {
    if (!this.deps.isCurrent(term)) return Promise.resolve();
    return this.#watch(
      this.deps.channel.announcePosition(this.position.cursors, shopIds),
      () => `${shopIds.length + 1} cursors of partner ${this.partnerId}`,
    );
  }

  #watch(accepted: Promise<void>, what: string | (() => string)): Promise<void> {
    const { channel, deadlines, settings } = this.deps;
    return deadlines.watch(
      accepted,
      () =>
        new DeliveryTimeoutError(
          channel.name,
          typeof what === "string" ? what : what(),
          settings.publishTimeoutMs,
        ),
    );
  }

  #announceLater(term: number, delayMs: number): void {
    if (this.#announceTimer !== undefined) return;
    this.#announceTimer = setTimeout(() => {
      this.#announceTimer = undefined;
      if (this.deps.isCurrent(term) && this.#retryTimer === undefined) this.deps.enqueue(this);
    }, delayMs);
    this.#announceTimer.unref();
  }

  #retryLater(term: number, delayMs: number): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.deps.isCurrent(term)) this.deps.enqueue(this);
    }, delayMs);
    this.#retryTimer.unref();
  }
}
