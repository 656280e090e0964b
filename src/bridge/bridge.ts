/**
 * The bridge: mirrors the event log to MQTT, per partner in seq order, at
 * least once, never skipping.
 *
 * Invariants:
 * - A partner's durable cursor moves only after the broker accepted every
 *   message of the batch and of every batch before it, so a crash re-publishes
 *   and never skips.
 * - One pump per partner at a time, handing a partner's messages to the
 *   publisher in seq order (the publisher keeps that order, so the next batch
 *   need not wait for the broker to accept the last); partners run in
 *   parallel up to `concurrency`.
 * - Only the holder of the leader lock publishes; losing the lock stops every
 *   pump before its next message.
 * - A partner whose publishes fail backs off alone; the others keep flowing.
 *
 * Imports domain code only; the log, the publisher and the lock are ports.
 */
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { Cursor, OrderEvent, PartnerStatus } from "../domain/events.ts";
import { EVENT_KIND } from "../domain/events.ts";
import { type PartnerState, pushesEvents } from "../domain/partners.ts";
import {
  buildOrderEventTopic,
  buildPartnerCursorTopic,
  buildPartnerStatusTopic,
  buildShopCursorTopic,
} from "../domain/topics.ts";
import type {
  BridgeLog,
  LeaderLock,
  OutgoingMessage,
  PartnerCursors,
  Publisher,
  ScopeCursor,
} from "./ports.ts";

export type BridgeRole = "starting" | "leader" | "standby" | "stopped";

export interface BridgeOptions {
  log: Logger;
  source: BridgeLog;
  publisher: Publisher;
  lock: LeaderLock;
  /** The safety-net sweep for commits whose doorbell was missed. */
  sweepIntervalMs?: number;
  /** How often the retained cursors are re-published with a fresh `published_at`. */
  watermarkMs?: number;
  batchSize?: number;
  /** Partners pumped at once. */
  concurrency?: number;
  publishTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** How often a standby tries to take the lock. */
  standbyPollMs?: number;
  /** Messages per second a throttled partner may receive (a token bucket with one second of burst). */
  throttleRatePerSecond?: number;
}

export interface BridgeEvents {
  role: [BridgeRole];
  /** A batch was accepted by the broker, with every batch before it, and its cursor moved (committed within 100 ms). */
  published: [{ partnerId: string; fromSeq: number; toSeq: number; count: number; pushed: boolean }];
  /** Retained cursors re-published for an idle partner. */
  watermark: [{ partnerId: string; seq: number }];
  /** A partner's publish or read failed; it retries alone after `retryInMs`. */
  "partner-error": [{ partnerId: string; error: Error; retryInMs: number }];
}

interface PartnerPump {
  cursors: PartnerCursors;
  running: boolean;
  dirty: boolean;
  watermarkDue: boolean;
  /** The retained `partners/{p}/status` must be (re)published. */
  statusDue: boolean;
  stateSince: string;
  failures: number;
  retryTimer: NodeJS.Timeout | undefined;
  /**
   * Events handed over by a writer in this process, or read ahead for the doorbell, by seq:
   * the next batch is taken from here when it continues the published cursor.
   */
  handed: Map<number, OrderEvent>;
  /** The highest seq known to be committed (handed over or read). */
  knownHeadSeq: number;
  /** Throttled partners: tokens left and when they were last refilled. */
  tokens: number;
  refilledAt: number;
  /** Shops whose cursor moved since the retained cursors were last published (none: nothing due). */
  unpublishedShops: Set<string>;
  cursorsPublishedAt: number;
  /** Brings the pump back when the retained cursors it held back are due. */
  cursorTimer: NodeJS.Timeout | undefined;
  /** The durable cursor trails the published one: committed with every other partner's, every 100 ms. */
  committedSeq: number;
  uncommittedShops: Map<string, ScopeCursor>;
  /**
   * The last seq handed to the publisher in this run (never behind `cursors.published`): the next
   * batch starts after it while the ones before it wait for the broker.
   */
  sentSeq: number;
  /** Publishes handed over and not yet settled, oldest first: they settle in this order. */
  inFlight: InFlight[];
  inFlightMessages: number;
  /** The first failure among the publishes in flight, in the order they were handed over. */
  sendError: Error | undefined;
  /**
   * A publish in flight failed (or a 'published' listener threw): nothing more is handed over
   * in this run, so nothing overtakes the events that failed; the pump backs off and starts
   * again from what was accepted.
   */
  halted: boolean;
  /** Wakes the pump when a publish in flight settles or new events arrive. */
  wakeUp: (() => void) | undefined;
}

/** A publish handed over (a batch, or retained cursors): what to do once it and all before it settled. */
interface InFlight {
  messages: number;
  settled: boolean;
  error: Error | undefined;
  onAccepted: (() => void) | undefined;
  onFailed: (() => void) | undefined;
}

/**
 * The retained cursors go out at most this often per partner (and this long after the last
 * batch at the latest); a partner that was quiet gets them right after its batch. Each cursor
 * message costs the broker about what an event costs, and a busy partner touches several
 * shops: at 250 ms they outnumbered the events (1.3 per event at 10 events/s a partner, 4
 * shops) and took a fifth of the process's CPU. A cursor that trails by a second only tells
 * a device a little late that it missed nothing: the events themselves carry seq and
 * prev_shop_seq for gaps.
 */
const CURSOR_COALESCE_MS = 1_000;

/**
 * Every partner's durable cursor is committed together, in one statement, this often. It
 * trails what the broker accepted by up to this long, which after a crash costs
 * re-publishing (duplicates), never a gap. Committing per partner after each small batch
 * cost a database round trip per batch (500/s with 50 partners at 750 events/s).
 */
const COMMIT_INTERVAL_MS = 100;

/** Events held for the handover, per partner and in all; past either, the pump reads them from the log. */
const HANDED_MAX = 2_000;
const HANDED_TOTAL_MAX = 20_000;
/** Events read ahead per partner when the doorbell rings; a longer backlog is read by its pump. */
const PREFETCH_EACH = 200;

/** States in which events are not pushed: clients are told to poll REST (the cursors still move). */

class PublishTimeoutError extends Error {
  constructor(messages: OutgoingMessage[], ms: number) {
    const first = messages[0]?.topic;
    super(
      messages.length === 1
        ? `broker did not accept a message on ${first} within ${ms} ms`
        : `broker did not accept ${messages.length} messages (first on ${first}) within ${ms} ms`,
    );
    this.name = "PublishTimeoutError";
  }
}

export class Bridge extends EventEmitter<BridgeEvents> {
  #role: BridgeRole = "starting";
  /** Bumped on every change of leadership: a pump from an older term stops. */
  #term = 0;
  readonly #pumps = new Map<string, PartnerPump>();
  readonly #ready: string[] = [];
  #active = 0;
  readonly #idleWaiters = new Set<() => void>();
  #timers: NodeJS.Timeout[] = [];
  #committing: Promise<void> | undefined;
  /** Events held in every pump's `handed`, bounded by HANDED_TOTAL_MAX (many partners, each behind). */
  #handedTotal = 0;
  #standbyTimer: NodeJS.Timeout | undefined;
  #unlistenDoorbell: (() => Promise<void>) | undefined;
  readonly #deadlines: Deadlines;
  readonly #options: Required<Omit<BridgeOptions, "log" | "source" | "publisher" | "lock">>;

  constructor(private readonly deps: BridgeOptions) {
    super();
    this.#options = {
      sweepIntervalMs: deps.sweepIntervalMs ?? 1_000,
      watermarkMs: deps.watermarkMs ?? 5_000,
      batchSize: deps.batchSize ?? 500,
      concurrency: deps.concurrency ?? 8,
      publishTimeoutMs: deps.publishTimeoutMs ?? 10_000,
      backoffInitialMs: deps.backoffInitialMs ?? 100,
      backoffMaxMs: deps.backoffMaxMs ?? 30_000,
      standbyPollMs: deps.standbyPollMs ?? 1_000,
      throttleRatePerSecond: deps.throttleRatePerSecond ?? 100,
    };
    this.#deadlines = new Deadlines(this.#options.publishTimeoutMs);
    deps.lock.onLost(() => {
      if (this.#role !== "leader") return;
      this.deps.log.error("bridge lost its leader lock; standing by");
      void this.#stepDown().then(() => this.#scheduleLeaderAttempt());
    });
  }

  get role(): BridgeRole {
    return this.#role;
  }

  /** The last seq published per partner (leader only; empty otherwise). */
  publishedSeqs(): Map<string, number> {
    return new Map([...this.#pumps].map(([id, pump]) => [id, pump.cursors.published.seq]));
  }

  async start(): Promise<void> {
    await this.#tryLead();
  }

  /**
   * A writer in this process committed `event`: wakes its partner's pump and hands the event
   * over, so the pump need not read it back from the log when it is next in line.
   */
  committed(event: OrderEvent): void {
    if (this.#role !== "leader") return;
    const pump = this.#pumps.get(event.partner_id);
    if (!pump) {
      void this.#discover([event.partner_id]);
      return;
    }
    this.#hand(event);
    this.#markDirty(pump);
  }

  /**
   * The doorbell named these partners: read what they committed in one query for all of them
   * and hand it to their pumps, instead of one read per partner (a ring names a few partners
   * with an event or two each). A failed read only means the pumps read for themselves.
   */
  async #prefetch(partnerIds: string[]): Promise<void> {
    const term = this.#term;
    const unknown = partnerIds.filter((id) => !this.#pumps.has(id));
    if (unknown.length > 0) void this.#discover(unknown);
    // Only for pumps with nothing in hand: the others have their next batch, or are reading it.
    const idle = partnerIds
      .map((id) => this.#pumps.get(id))
      .filter((pump): pump is PartnerPump => pump !== undefined && !pump.running && pump.handed.size === 0);
    if (idle.length > 0) {
      try {
        const events = await this.deps.source.readAfter(
          idle.map((pump) => ({ partnerId: pump.cursors.partnerId, afterSeq: pump.cursors.published.seq })),
          PREFETCH_EACH,
        );
        if (term !== this.#term) return;
        for (const event of events) this.#hand(event);
      } catch (error) {
        this.deps.log.warn({ err: error }, "bridge could not read ahead for the doorbell");
      }
    }
    for (const id of partnerIds) this.wake(id);
  }

  /** Keeps an event for its pump's next batch (see `committed`). */
  #hand(event: OrderEvent): void {
    const pump = this.#pumps.get(event.partner_id);
    if (!pump) return;
    pump.knownHeadSeq = Math.max(pump.knownHeadSeq, event.seq);
    if (
      event.seq > pump.cursors.published.seq &&
      pump.handed.size < HANDED_MAX &&
      this.#handedTotal < HANDED_TOTAL_MAX &&
      !pump.handed.has(event.seq)
    ) {
      pump.handed.set(event.seq, event);
      this.#handedTotal++;
    }
  }

  /** In-process doorbell: events were committed for this partner (read them from the log). */
  wake(partnerId: string): void {
    if (this.#role !== "leader") return;
    const pump = this.#pumps.get(partnerId);
    if (pump) this.#markDirty(pump);
    else void this.#discover([partnerId]);
  }

  /** Stops taking work, lets in-flight batches finish and commit, releases the lock. */
  async stop(): Promise<void> {
    if (this.#role === "stopped") return;
    clearTimeout(this.#standbyTimer);
    await this.#stepDown();
    this.#setRole("stopped");
    await this.deps.lock
      .release()
      .catch((error) => this.deps.log.warn({ err: error }, "leader lock release failed"));
  }

  #setRole(role: BridgeRole): void {
    if (this.#role === role) return;
    this.#role = role;
    this.deps.log.info({ role }, "bridge role");
    this.emit("role", role);
  }

  #scheduleLeaderAttempt(): void {
    if (this.#role === "stopped") return;
    clearTimeout(this.#standbyTimer);
    this.#standbyTimer = setTimeout(() => void this.#tryLead(), this.#options.standbyPollMs);
    this.#standbyTimer.unref();
  }

  async #tryLead(): Promise<void> {
    if (this.#role === "stopped" || this.#role === "leader") return;
    let acquired = false;
    try {
      acquired = await this.deps.lock.tryAcquire();
    } catch (error) {
      this.deps.log.warn({ err: error }, "leader lock attempt failed");
    }
    if (!acquired) {
      this.#setRole("standby");
      this.#scheduleLeaderAttempt();
      return;
    }
    try {
      await this.#becomeLeader();
    } catch (error) {
      this.deps.log.error({ err: error }, "bridge could not start leading; retrying");
      await this.#stepDown();
      await this.deps.lock.release().catch(() => undefined);
      this.#scheduleLeaderAttempt();
    }
  }

  async #becomeLeader(): Promise<void> {
    const term = ++this.#term;
    const partners = await this.deps.source.loadPartners();
    if (term !== this.#term) return;
    this.#pumps.clear();
    this.#handedTotal = 0;
    // A new term starts with an empty queue: an id left there by the last term would block its partner.
    this.#ready.length = 0;
    for (const cursors of partners) this.#pumps.set(cursors.partnerId, this.#newPump(cursors));
    this.#unlistenDoorbell = await this.deps.source.onDoorbell((ring) => {
      if (ring.partnerIds === "all") {
        void this.#sweep();
        return;
      }
      // What the ring carried is handed over as a writer in this process would; the partners it
      // only named are read ahead.
      for (const event of ring.events) this.#hand(event);
      void this.#prefetch(ring.partnerIds);
    });
    this.#setRole("leader");
    const sweep = setInterval(() => void this.#sweep(), this.#options.sweepIntervalMs);
    const watermark = setInterval(() => void this.#watermark(), this.#options.watermarkMs);
    // A tick while a commit is in flight (a slow or restarting database) is skipped, not queued.
    const commit = setInterval(() => {
      if (!this.#committing) void this.#commitAll();
    }, COMMIT_INTERVAL_MS);
    sweep.unref();
    watermark.unref();
    commit.unref();
    this.#timers = [sweep, watermark, commit];
    // Publish every cursor at once, so devices see a fresh watermark from the new leader.
    for (const pump of this.#pumps.values()) {
      pump.watermarkDue = true;
      pump.dirty = pump.cursors.headSeq > pump.cursors.published.seq;
      this.#enqueue(pump);
    }
  }

  async #stepDown(): Promise<void> {
    this.#term++;
    // No longer leading from this moment: nothing new starts while in-flight work finishes.
    if (this.#role === "leader") this.#setRole("standby");
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    for (const pump of this.#pumps.values()) {
      clearTimeout(pump.retryTimer);
      clearTimeout(pump.cursorTimer);
    }
    this.#ready.length = 0;
    const unlisten = this.#unlistenDoorbell;
    this.#unlistenDoorbell = undefined;
    await unlisten?.().catch(() => undefined);
    // Let in-flight batches finish (they stop at their next message) before declaring standby.
    if (this.#active > 0) await new Promise<void>((resolve) => this.#idleWaiters.add(resolve));
    // Commit every cursor that trails what the broker accepted.
    await this.#commitAll();
    this.#pumps.clear();
    this.#handedTotal = 0;
  }

  #newPump(cursors: PartnerCursors): PartnerPump {
    return {
      cursors,
      running: false,
      dirty: false,
      watermarkDue: false,
      statusDue: true,
      stateSince: new Date().toISOString(),
      failures: 0,
      retryTimer: undefined,
      handed: new Map(),
      knownHeadSeq: cursors.headSeq,
      tokens: this.#options.throttleRatePerSecond,
      refilledAt: Date.now(),
      unpublishedShops: new Set(),
      cursorsPublishedAt: 0,
      cursorTimer: undefined,
      committedSeq: cursors.published.seq,
      uncommittedShops: new Map(),
      sentSeq: cursors.published.seq,
      inFlight: [],
      inFlightMessages: 0,
      sendError: undefined,
      halted: false,
      wakeUp: undefined,
    };
  }

  /** A partner moved on the ladder (or was suspended): push changes from its next message on. */
  setPartnerState(partnerId: string, state: PartnerState): void {
    const pump = this.#pumps.get(partnerId);
    if (!pump || pump.cursors.state === state) return;
    pump.cursors = { ...pump.cursors, state };
    pump.stateSince = new Date().toISOString();
    pump.statusDue = true;
    pump.tokens = this.#options.throttleRatePerSecond;
    pump.refilledAt = Date.now();
    this.#markDirty(pump);
  }

  /** Takes up to `wanted` tokens of a throttled partner; returns how many it may send now. */
  #takeTokens(pump: PartnerPump, wanted: number): number {
    if (pump.cursors.state !== "throttled") return wanted;
    const rate = this.#options.throttleRatePerSecond;
    const now = Date.now();
    pump.tokens = Math.min(rate, pump.tokens + ((now - pump.refilledAt) / 1_000) * rate);
    pump.refilledAt = now;
    const granted = Math.min(wanted, Math.floor(pump.tokens));
    pump.tokens -= granted;
    return granted;
  }

  async #sweep(): Promise<void> {
    if (this.#role !== "leader") return;
    try {
      const ids = await this.deps.source.partnersWithBacklog();
      const unknown = ids.filter((id) => !this.#pumps.has(id));
      if (unknown.length > 0) await this.#discover(unknown);
      for (const id of ids) {
        const pump = this.#pumps.get(id);
        if (pump) this.#markDirty(pump);
      }
    } catch (error) {
      this.deps.log.warn({ err: error }, "bridge sweep failed");
    }
  }

  /** Loads partners created since this term began. */
  async #discover(partnerIds: string[]): Promise<void> {
    const term = this.#term;
    const partners = await this.deps.source.loadPartners().catch((error) => {
      this.deps.log.warn({ err: error }, "bridge could not load partners");
      return [];
    });
    if (term !== this.#term) return;
    for (const cursors of partners) {
      if (this.#pumps.has(cursors.partnerId)) continue;
      const pump = this.#newPump(cursors);
      pump.watermarkDue = true;
      this.#pumps.set(cursors.partnerId, pump);
    }
    for (const id of partnerIds) {
      const pump = this.#pumps.get(id);
      if (pump) this.#markDirty(pump);
    }
  }

  async #watermark(): Promise<void> {
    if (this.#role !== "leader") return;
    const known = this.#pumps.size;
    await this.#discover([]);
    if (this.#pumps.size !== known)
      this.deps.log.debug({ partners: this.#pumps.size }, "bridge found new partners");
    for (const pump of this.#pumps.values()) {
      pump.watermarkDue = true;
      if (pump.retryTimer === undefined) this.#enqueue(pump);
    }
  }

  #markDirty(pump: PartnerPump): void {
    pump.dirty = true;
    pump.wakeUp?.();
    if (pump.retryTimer === undefined) this.#enqueue(pump);
  }

  #enqueue(pump: PartnerPump): void {
    if (pump.running || this.#ready.includes(pump.cursors.partnerId)) return;
    this.#ready.push(pump.cursors.partnerId);
    this.#drainQueue();
  }

  #drainQueue(): void {
    while (this.#active < this.#options.concurrency && this.#ready.length > 0 && this.#role === "leader") {
      const id = this.#ready.shift()!;
      const pump = this.#pumps.get(id);
      if (!pump || pump.running) continue;
      this.#active++;
      pump.running = true;
      void this.#runPump(pump, this.#term).finally(() => {
        pump.running = false;
        this.#active--;
        if ((pump.dirty || pump.watermarkDue) && pump.retryTimer === undefined) this.#enqueue(pump);
        if (this.#active === 0) {
          for (const resolve of this.#idleWaiters) resolve();
          this.#idleWaiters.clear();
        }
        this.#drainQueue();
      });
    }
  }

  async #runPump(pump: PartnerPump, term: number): Promise<void> {
    const partnerId = pump.cursors.partnerId;
    // Nothing is in flight between runs: this one starts where the broker last accepted.
    pump.sentSeq = pump.cursors.published.seq;
    pump.sendError = undefined;
    pump.halted = false;
    try {
      if (pump.statusDue && term === this.#term) {
        pump.statusDue = false;
        await this.#publishAll([
          {
            topic: buildPartnerStatusTopic(partnerId),
            payload: JSON.stringify({
              state: pump.cursors.state,
              since: pump.stateSince,
            } satisfies PartnerStatus),
            qos: 1,
            retain: true,
          },
        ]);
      }
      let throttledForMs = 0;
      while (term === this.#term && !pump.halted) {
        if (pump.dirty) {
          pump.dirty = false;
          throttledForMs = await this.#sendBacklog(pump, term);
          if (throttledForMs > 0) break;
        } else if (pump.inFlight.length > 0) await this.#nextWakeUp(pump);
        else break;
      }
      await this.#allAccepted(pump);
      if (throttledForMs > 0) {
        // Throttled and out of tokens: come back when one has been refilled.
        pump.dirty = true;
        this.#retryLater(pump, term, throttledForMs);
        return;
      }
      if (pump.unpublishedShops.size > 0 && term === this.#term) {
        const wait = pump.cursorsPublishedAt + CURSOR_COALESCE_MS - Date.now();
        if (wait <= 0) {
          this.#sendPendingCursors(pump, term);
          await this.#allAccepted(pump);
        } else this.#publishCursorsLater(pump, term, wait);
      }
      if (pump.watermarkDue && term === this.#term) {
        pump.watermarkDue = false;
        await this.#publishCursors(pump, [...pump.cursors.shops.keys()], term);
        this.emit("watermark", { partnerId, seq: pump.cursors.published.seq });
      }
      pump.failures = 0;
    } catch (error) {
      // The batches still in flight settle first: the next run starts from what was accepted.
      await this.#allAccepted(pump).catch(() => undefined);
      if (term !== this.#term) return;
      pump.failures++;
      pump.dirty = true;
      const retryInMs = Math.min(
        this.#options.backoffInitialMs * 2 ** (pump.failures - 1),
        this.#options.backoffMaxMs,
      );
      this.deps.log.warn(
        { err: error, partner: partnerId, retryInMs, failures: pump.failures },
        "bridge partner backing off",
      );
      this.emit("partner-error", { partnerId, error: error as Error, retryInMs });
      this.#retryLater(pump, term, retryInMs);
    }
  }

  #publishCursorsLater(pump: PartnerPump, term: number, delayMs: number): void {
    if (pump.cursorTimer !== undefined) return;
    pump.cursorTimer = setTimeout(() => {
      pump.cursorTimer = undefined;
      if (term === this.#term && pump.retryTimer === undefined) this.#enqueue(pump);
    }, delayMs);
    pump.cursorTimer.unref();
  }

  /**
   * The handed-over events that continue what was sent without a gap, up to `limit`.
   * Anything else (a seq committed by another process, a handover that arrives late) is read
   * from the log: the handover only saves a read, it never decides what is published.
   */
  #takeHanded(pump: PartnerPump, limit: number): OrderEvent[] {
    const batch: OrderEvent[] = [];
    const sent = pump.sentSeq;
    for (let seq = sent + 1; batch.length < limit; seq++) {
      const event = pump.handed.get(seq);
      if (!event) break;
      batch.push(event);
    }
    for (const seq of pump.handed.keys()) {
      if (seq <= sent + batch.length) {
        pump.handed.delete(seq);
        this.#handedTotal = Math.max(0, this.#handedTotal - 1);
      }
    }
    return batch;
  }

  #retryLater(pump: PartnerPump, term: number, delayMs: number): void {
    clearTimeout(pump.retryTimer);
    pump.retryTimer = setTimeout(() => {
      pump.retryTimer = undefined;
      if (term === this.#term) this.#enqueue(pump);
    }, delayMs);
    pump.retryTimer.unref();
  }

  /**
   * Hands the partner's committed events to the publisher, batch after batch, without waiting
   * for the broker between batches: the publisher keeps their order, and a batch that waited for
   * the one before it to be accepted waited a turn or two of the event loop, several milliseconds
   * under load. At most a batch's worth of messages is in flight, retained cursors included.
   * Returns how long to wait when a throttled partner ran out of tokens (0 otherwise).
   */
  async #sendBacklog(pump: PartnerPump, term: number): Promise<number> {
    const partnerId = pump.cursors.partnerId;
    while (term === this.#term && !pump.halted) {
      const room = this.#options.batchSize - pump.inFlightMessages;
      if (room <= 0) {
        await this.#nextWakeUp(pump);
        continue;
      }
      const allowed = this.#takeTokens(pump, room);
      if (allowed === 0) return Math.ceil(1_000 / this.#options.throttleRatePerSecond);
      const handed = this.#takeHanded(pump, allowed);
      const events =
        handed.length > 0
          ? handed
          : await this.deps.source.readAfter([{ partnerId, afterSeq: pump.sentSeq }], allowed);
      // Unused tokens go back to a throttled partner's bucket.
      if (pump.cursors.state === "throttled") pump.tokens += allowed - events.length;
      if (events.length === 0 || term !== this.#term || pump.halted) return 0;
      this.#sendBatch(pump, events, term);
      // A short batch from the log means drained; from the handover, only if nothing later is known.
      const drained = handed.length > 0 ? pump.sentSeq >= pump.knownHeadSeq : events.length < allowed;
      if (drained) return 0;
    }
    return 0;
  }

  /** Hands a batch to the publisher; its cursors move once the broker accepted it and every batch before it. */
  #sendBatch(pump: PartnerPump, events: OrderEvent[], term: number): void {
    const partnerId = pump.cursors.partnerId;
    const qos = pump.cursors.qos;
    const last = events[events.length - 1]!;
    const push = pushesEvents(pump.cursors.state);
    pump.sentSeq = last.seq;
    // Poll-only: the events are not pushed, but the cursors move so clients see the head and poll.
    const accepted = push
      ? this.#publishAll(
          events.map((event) => ({
            topic: buildOrderEventTopic(partnerId, event.shop_id, EVENT_KIND[event.type]),
            payload: JSON.stringify(event),
            qos,
            retain: false,
          })),
        )
      : Promise.resolve();
    this.#inOrder(pump, accepted, events.length, () => {
      const cursors = pump.cursors;
      const previous = cursors.published.seq;
      // Every event of the batch was accepted: the cursors move now, in memory, in place (a batch
      // usually holds one event, and copying the partner's cursors and shop map for each one was
      // the batch's largest allocation). Their retained copies follow (coalesced), and the durable
      // cursor is committed off the hot path: a durable cursor that trails only means re-publishing
      // after a crash, never a gap.
      for (const event of events) {
        const shopCursor: ScopeCursor = { seq: event.seq, occurredAt: event.occurred_at };
        cursors.shops.set(event.shop_id, shopCursor);
        pump.unpublishedShops.add(event.shop_id);
        pump.uncommittedShops.set(event.shop_id, shopCursor);
      }
      cursors.headSeq = Math.max(cursors.headSeq, last.seq);
      // A new object, never changed in place: a commit in flight holds the one it is committing.
      cursors.published = { seq: last.seq, occurredAt: last.occurred_at };
      this.emit("published", {
        partnerId,
        fromSeq: previous + 1,
        toSeq: last.seq,
        count: events.length,
        pushed: push,
      });
      if (Date.now() - pump.cursorsPublishedAt >= CURSOR_COALESCE_MS) this.#sendPendingCursors(pump, term);
    });
  }

  /** The retained cursors of what was accepted so far, handed over behind what is in flight; on failure they stay due. */
  #sendPendingCursors(pump: PartnerPump, term: number): void {
    const shopIds = [...pump.unpublishedShops];
    pump.unpublishedShops.clear();
    pump.cursorsPublishedAt = Date.now();
    this.#inOrder(pump, this.#publishCursors(pump, shopIds, term), shopIds.length + 1, undefined, () => {
      for (const shopId of shopIds) pump.unpublishedShops.add(shopId);
    });
  }

  /**
   * Keeps a publish in flight until it and every one handed over before it settled, so that
   * `onAccepted` runs in the order the publishes were handed over, and never after a failure:
   * from the first one (kept in `sendError`) on, each gets `onFailed` instead.
   */
  #inOrder(
    pump: PartnerPump,
    accepted: Promise<void>,
    messages: number,
    onAccepted?: () => void,
    onFailed?: () => void,
  ): void {
    const entry: InFlight = { messages, settled: false, error: undefined, onAccepted, onFailed };
    pump.inFlight.push(entry);
    pump.inFlightMessages += messages;
    accepted.then(
      () => this.#settle(pump, entry, undefined),
      (error: unknown) => {
        // At once, not when its turn comes: a later batch must not go out ahead of these events.
        pump.halted = true;
        this.#settle(pump, entry, error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  #settle(pump: PartnerPump, entry: InFlight, error: Error | undefined): void {
    entry.settled = true;
    entry.error = error;
    const queue = pump.inFlight;
    while (queue.length > 0 && queue[0]!.settled) {
      const first = queue.shift()!;
      pump.inFlightMessages -= first.messages;
      pump.sendError ??= first.error;
      if (pump.sendError !== undefined) {
        first.onFailed?.();
        continue;
      }
      try {
        // It may hand over more (the retained cursors): they join the end of the queue.
        first.onAccepted?.();
      } catch (thrown) {
        // A listener of 'published' threw: the pump backs off and re-publishes from here.
        pump.sendError = thrown instanceof Error ? thrown : new Error(String(thrown));
        pump.halted = true;
      }
    }
    pump.wakeUp?.();
  }

  /** Waits until every publish in flight settled; throws the first failure among them. */
  async #allAccepted(pump: PartnerPump): Promise<void> {
    while (pump.inFlight.length > 0) await this.#nextWakeUp(pump);
    if (pump.sendError !== undefined) throw pump.sendError;
  }

  /** Resolves when a publish in flight settles or new events arrive. */
  #nextWakeUp(pump: PartnerPump): Promise<void> {
    return new Promise<void>((resolve) => {
      pump.wakeUp = () => {
        pump.wakeUp = undefined;
        resolve();
      };
    });
  }

  /**
   * Commits, in one statement, every partner's cursors that trail what the broker accepted.
   * One commit at a time: a call while one is in flight waits for it and then commits again.
   */
  #commitAll(): Promise<void> {
    const next = (this.#committing ?? Promise.resolve()).then(() => this.#commitDue());
    this.#committing = next;
    void next.finally(() => {
      if (this.#committing === next) this.#committing = undefined;
    });
    return next;
  }

  async #commitDue(): Promise<void> {
    const due = [...this.#pumps.values()]
      .filter((pump) => pump.committedSeq < pump.cursors.published.seq || pump.uncommittedShops.size > 0)
      .map((pump) => {
        const commit = {
          pump,
          partnerId: pump.cursors.partnerId,
          partner: pump.cursors.published,
          shops: pump.uncommittedShops,
        };
        pump.uncommittedShops = new Map();
        return commit;
      });
    if (due.length === 0) return;
    try {
      await this.deps.source.commitCursors(due);
      for (const { pump, partner } of due) pump.committedSeq = Math.max(pump.committedSeq, partner.seq);
    } catch (error) {
      // Put them back: the next interval or the final flush commits them.
      for (const { pump, shops } of due) {
        for (const [shopId, cursor] of shops) {
          if (!pump.uncommittedShops.has(shopId)) pump.uncommittedShops.set(shopId, cursor);
        }
      }
      this.deps.log.warn({ err: error, partners: due.length }, "bridge cursor commit failed");
    }
  }

  async #publishCursors(pump: PartnerPump, shopIds: string[], term: number): Promise<void> {
    const { partnerId, published, shops } = pump.cursors;
    const publishedAt = new Date().toISOString();
    const payload = (cursor: ScopeCursor): string =>
      JSON.stringify({
        seq: cursor.seq,
        epoch: this.deps.source.epoch,
        occurred_at: cursor.occurredAt,
        published_at: publishedAt,
      } satisfies Cursor);
    if (term !== this.#term) return;
    await this.#publishAll([
      { topic: buildPartnerCursorTopic(partnerId), payload: payload(published), qos: 1, retain: true },
      ...shopIds.map((shopId) => ({
        topic: buildShopCursorTopic(partnerId, shopId),
        payload: payload(shops.get(shopId) ?? { seq: 0, occurredAt: null }),
        qos: 1 as const,
        retain: true,
      })),
    ]);
  }

  /**
   * Hands every message to the publisher at once (it keeps their order) and resolves when the
   * broker accepted them all: waiting for each before the next would cost a round trip per
   * message, and a batch is accepted or retried as a whole anyway.
   */
  #publishAll(messages: OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    const { publisher } = this.deps;
    const accepted =
      messages.length === 1
        ? publisher.publish(messages[0]!)
        : Promise.all(messages.map((message) => publisher.publish(message))).then(() => undefined);
    return this.#deadlines.watch(
      accepted,
      () => new PublishTimeoutError(messages, this.#options.publishTimeoutMs),
    );
  }
}

/**
 * Fails promises that have not settled within `ms`, all from one interval timer (started while any
 * is watched): a timer of its own for every batch, with the race around it, cost more than a
 * batch of one event's own bookkeeping. A promise fails between `ms` and `ms` plus a tick late.
 */
class Deadlines {
  readonly #watched = new Set<{ due: number; fail: () => void }>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ms: number,
    private readonly tickMs = Math.max(10, Math.min(1_000, ms / 4)),
  ) {}

  watch<T>(promise: Promise<T>, timeoutError: () => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry = { due: Date.now() + this.ms, fail: () => reject(timeoutError()) };
      this.#watched.add(entry);
      this.#timer ??= setInterval(() => this.#expire(), this.tickMs).unref();
      promise.then(
        (value) => {
          this.#watched.delete(entry);
          resolve(value);
        },
        (error: unknown) => {
          this.#watched.delete(entry);
          reject(error);
        },
      );
    });
  }

  #expire(): void {
    const now = Date.now();
    for (const entry of this.#watched) {
      if (entry.due > now) continue;
      this.#watched.delete(entry);
      entry.fail();
    }
    if (this.#watched.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
