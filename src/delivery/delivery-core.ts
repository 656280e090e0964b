/**
 * The delivery core: mirrors the event log to a channel, per partner in seq
 * order, at least once, never skipping. Channel-agnostic: MQTT is one
 * channel (src/bridge/), webhooks and the SSE stream plug in the same way.
 *
 * Invariants:
 * - A partner's durable position moves only after the channel accepted every
 *   event of the batch and of every batch before it, so a crash re-delivers
 *   and never skips (partner-pipeline.ts, in-order-settlement.ts).
 * - One pipeline per partner runs at a time; partners run in parallel up to
 *   `concurrency`, from a ready queue (this file).
 * - Only the holder of the leader lock delivers; losing the lock stops every
 *   pipeline before its next batch (leadership.ts).
 * - A partner whose deliveries fail backs off alone; the others keep flowing.
 *
 * This file: the partners (discovered at start, from commits, rings and the
 * sweep), the ready queue, the wake-ups (in-process commits, the doorbell,
 * the sweep, the watermark) and the timers of a term. Imports domain and this
 * folder only; the log, the channel and the lock are ports.
 */
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { DeliveryLog, LeaderLock, PartnerCursors } from "../domain/delivery.ts";
import type { OrderEvent } from "../domain/events.ts";
import type { PartnerState } from "../domain/partners.ts";
import type { Channel } from "./channel.ts";
import { type CursorCommits, createCursorCommits } from "./cursor-commits.ts";
import { createDeadlines } from "./deadlines.ts";
import { createHandover, type Handover } from "./handover.ts";
import { createLeadership, type DeliveryRole, type Leadership } from "./leadership.ts";
import {
  type DeliveryEvents,
  PartnerPipeline,
  type PipelineDeps,
  type PipelineSettings,
} from "./partner-pipeline.ts";

export type { DeliveryRole } from "./leadership.ts";
export type { DeliveryEvents } from "./partner-pipeline.ts";

export interface DeliveryOptions {
  log: Logger;
  source: DeliveryLog;
  channel: Channel;
  lock: LeaderLock;
  /** The safety-net sweep for commits whose doorbell was missed. */
  sweepIntervalMs?: number;
  /** How often the position is announced again with a fresh timestamp. */
  watermarkMs?: number;
  batchSize?: number;
  /** Partners delivered to at once. */
  concurrency?: number;
  /** A channel call not accepted within this long fails (and its partner backs off). */
  publishTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** How often a standby tries to take the lock. */
  standbyPollMs?: number;
  /** Messages per second a throttled partner may receive (a token bucket with one second of burst). */
  throttleRatePerSecond?: number;
}

/**
 * Every partner's durable cursor is committed together, in one statement, this often.
 * Committing per partner after each small batch cost a database round trip per batch (500/s
 * with 50 partners at 750 events/s).
 */
const COMMIT_INTERVAL_MS = 100;
/** Events held for the handover, per partner and in all; past either, the pipeline reads them from the log. */
const HANDED_MAX = 2_000;
const HANDED_TOTAL_MAX = 20_000;
/** Events read ahead per partner when the doorbell rings; a longer backlog is read by its pipeline. */
const PREFETCH_EACH = 200;

export class DeliveryCore extends EventEmitter<DeliveryEvents> {
  readonly #pipelines = new Map<string, PartnerPipeline>();
  readonly #ready: string[] = [];
  #active = 0;
  readonly #idleWaiters = new Set<() => void>();
  #timers: NodeJS.Timeout[] = [];
  #unlistenDoorbell: (() => Promise<void>) | undefined;
  readonly #leadership: Leadership;
  readonly #handover: Handover = createHandover(HANDED_MAX, HANDED_TOTAL_MAX);
  readonly #commits: CursorCommits;
  readonly #pipelineDeps: PipelineDeps;
  readonly #options: { sweepIntervalMs: number; watermarkMs: number; concurrency: number };

  constructor(private readonly deps: DeliveryOptions) {
    super();
    const settings: PipelineSettings = {
      batchSize: deps.batchSize ?? 500,
      publishTimeoutMs: deps.publishTimeoutMs ?? 10_000,
      backoffInitialMs: deps.backoffInitialMs ?? 100,
      backoffMaxMs: deps.backoffMaxMs ?? 30_000,
      throttleRatePerSecond: deps.throttleRatePerSecond ?? 100,
    };
    this.#options = {
      sweepIntervalMs: deps.sweepIntervalMs ?? 1_000,
      watermarkMs: deps.watermarkMs ?? 5_000,
      concurrency: deps.concurrency ?? 8,
    };
    this.#leadership = createLeadership({
      lock: deps.lock,
      log: deps.log,
      standbyPollMs: deps.standbyPollMs ?? 1_000,
      onRole: (role) => {
        this.deps.log.info({ role, channel: this.deps.channel.name }, "delivery role");
        this.emit("role", role);
      },
      prepare: (term) => this.#prepare(term),
      begin: () => this.#begin(),
      stepDown: () => this.#stepDown(),
    });
    this.#commits = createCursorCommits({
      log: deps.source,
      positions: () => [...this.#pipelines.values()].map((pipeline) => pipeline.position),
      onError: (error, partners) => this.deps.log.warn({ err: error, partners }, "cursor commit failed"),
    });
    this.#pipelineDeps = {
      log: deps.log,
      source: deps.source,
      channel: deps.channel,
      handover: this.#handover,
      deadlines: createDeadlines(settings.publishTimeoutMs),
      settings,
      isCurrent: (term) => this.#leadership.isCurrent(term),
      enqueue: (pipeline) => this.#enqueue(pipeline),
      emit: this.emit.bind(this) as PipelineDeps["emit"],
    };
  }

  get role(): DeliveryRole {
    return this.#leadership.role;
  }

  /** The last seq delivered per partner (leader only; empty otherwise). */
  publishedSeqs(): Map<string, number> {
    return new Map(
      [...this.#pipelines].map(([id, pipeline]) => [id, pipeline.position.cursors.published.seq]),
    );
  }

  async start(): Promise<void> {
    await this.#leadership.start();
  }

  /** Stops taking work, lets in-flight batches finish and commit, releases the lock. */
  async stop(): Promise<void> {
    await this.#leadership.stop();
  }

  /**
   * A writer in this process committed `event`: wakes its partner's pipeline and hands the event
   * over, so the pipeline need not read it back from the log when it is next in line.
   */
  committed(event: OrderEvent): void {
    if (this.role !== "leader") return;
    const pipeline = this.#pipelines.get(event.partner_id);
    if (!pipeline) {
      void this.#discover([event.partner_id]);
      return;
    }
    pipeline.keep(event);
    this.#markDirty(pipeline);
  }

  /** In-process doorbell: events were committed for this partner (read them from the log). */
  wake(partnerId: string): void {
    if (this.role !== "leader") return;
    const pipeline = this.#pipelines.get(partnerId);
    if (pipeline) this.#markDirty(pipeline);
    else void this.#discover([partnerId]);
  }

  /** A partner moved on the ladder (or was suspended): delivery changes from its next batch on. */
  setPartnerState(partnerId: string, state: PartnerState): void {
    const pipeline = this.#pipelines.get(partnerId);
    if (pipeline?.setState(state)) this.#markDirty(pipeline);
  }

  async #prepare(term: number): Promise<void> {
    const partners = await this.deps.source.loadPartners();
    if (!this.#leadership.isCurrent(term)) return;
    this.#pipelines.clear();
    this.#handover.clear();
    // A new term starts with an empty queue: an id left there by the last term would block its partner.
    this.#ready.length = 0;
    for (const cursors of partners) this.#pipelines.set(cursors.partnerId, this.#newPipeline(cursors));
    this.#unlistenDoorbell = await this.deps.source.onDoorbell((ring) => {
      if (ring.partnerIds === "all") {
        void this.#sweep();
        return;
      }
      // What the ring carried is handed over as a writer in this process would; the partners it
      // only named are read ahead.
      for (const event of ring.events) this.#pipelines.get(event.partner_id)?.keep(event);
      void this.#prefetch(ring.partnerIds);
    });
  }

  #begin(): void {
    const sweep = setInterval(() => void this.#sweep(), this.#options.sweepIntervalMs);
    const watermark = setInterval(() => void this.#watermark(), this.#options.watermarkMs);
    // A tick while a commit is in flight (a slow or restarting database) is skipped, not queued.
    const commit = setInterval(() => {
      if (!this.#commits.busy) void this.#commits.commitAll();
    }, COMMIT_INTERVAL_MS);
    sweep.unref();
    watermark.unref();
    commit.unref();
    this.#timers = [sweep, watermark, commit];
    // Announce every position at once, so clients see a fresh watermark from the new leader.
    for (const pipeline of this.#pipelines.values()) {
      const { headSeq, published } = pipeline.position.cursors;
      pipeline.watermarkDue = true;
      pipeline.dirty = headSeq > published.seq;
      this.#enqueue(pipeline);
    }
  }

  async #stepDown(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    for (const pipeline of this.#pipelines.values()) pipeline.clearTimers();
    this.#ready.length = 0;
    const unlisten = this.#unlistenDoorbell;
    this.#unlistenDoorbell = undefined;
    await unlisten?.().catch(() => undefined);
    // Let in-flight batches finish (they stop at their next batch) before declaring standby.
    if (this.#active > 0) await new Promise<void>((resolve) => this.#idleWaiters.add(resolve));
    // Commit every position that trails what the channel accepted.
    await this.#commits.commitAll();
    this.#pipelines.clear();
    this.#handover.clear();
  }

  #newPipeline(cursors: PartnerCursors): PartnerPipeline {
    return new PartnerPipeline(cursors, this.#pipelineDeps);
  }

  /**
   * The doorbell named these partners: read what they committed in one query for all of them
   * and hand it to their pipelines, instead of one read per partner (a ring names a few partners
   * with an event or two each). A failed read only means the pipelines read for themselves.
   */
  async #prefetch(partnerIds: string[]): Promise<void> {
    const term = this.#leadership.term;
    const unknown = partnerIds.filter((id) => !this.#pipelines.has(id));
    if (unknown.length > 0) void this.#discover(unknown);
    // Only for pipelines with nothing in hand: the others have their next batch, or are reading it.
    const idle = partnerIds
      .map((id) => this.#pipelines.get(id))
      .filter(
        (pipeline): pipeline is PartnerPipeline =>
          pipeline !== undefined && !pipeline.running && this.#handover.held(pipeline.partnerId) === 0,
      );
    if (idle.length > 0) {
      try {
        const events = await this.deps.source.readAfter(
          idle.map((pipeline) => ({
            partnerId: pipeline.partnerId,
            afterSeq: pipeline.position.cursors.published.seq,
          })),
          PREFETCH_EACH,
        );
        if (!this.#leadership.isCurrent(term)) return;
        for (const event of events) this.#pipelines.get(event.partner_id)?.keep(event);
      } catch (error) {
        this.deps.log.warn({ err: error }, "could not read ahead for the doorbell");
      }
    }
    for (const id of partnerIds) this.wake(id);
  }

  async #sweep(): Promise<void> {
    if (this.role !== "leader") return;
    try {
      const ids = await this.deps.source.partnersWithBacklog();
      const unknown = ids.filter((id) => !this.#pipelines.has(id));
      if (unknown.length > 0) await this.#discover(unknown);
      for (const id of ids) {
        const pipeline = this.#pipelines.get(id);
        if (pipeline) this.#markDirty(pipeline);
      }
    } catch (error) {
      this.deps.log.warn({ err: error }, "delivery sweep failed");
    }
  }

  /** Loads partners, and shops of known partners, created since this term began. */
  async #discover(partnerIds: string[]): Promise<void> {
    const term = this.#leadership.term;
    const partners = await this.deps.source.loadPartners().catch((error) => {
      this.deps.log.warn({ err: error }, "could not load partners");
      return [];
    });
    if (!this.#leadership.isCurrent(term)) return;
    for (const cursors of partners) {
      const known = this.#pipelines.get(cursors.partnerId);
      if (known) {
        // A shop added since: its cursor (seq 0 until its first event) joins the watermark, so
        // its devices can tell "no orders yet" from a lost link. Known shops keep their cursor.
        const shops = known.position.cursors.shops;
        for (const [shopId, cursor] of cursors.shops) if (!shops.has(shopId)) shops.set(shopId, cursor);
        continue;
      }
      const pipeline = this.#newPipeline(cursors);
      pipeline.watermarkDue = true;
      this.#pipelines.set(cursors.partnerId, pipeline);
    }
    for (const id of partnerIds) {
      const pipeline = this.#pipelines.get(id);
      if (pipeline) this.#markDirty(pipeline);
    }
  }

  async #watermark(): Promise<void> {
    if (this.role !== "leader") return;
    const known = this.#pipelines.size;
    await this.#discover([]);
    if (this.#pipelines.size !== known)
      this.deps.log.debug({ partners: this.#pipelines.size }, "delivery found new partners");
    for (const pipeline of this.#pipelines.values()) {
      pipeline.watermarkDue = true;
      if (!pipeline.backingOff) this.#enqueue(pipeline);
    }
  }

  #markDirty(pipeline: PartnerPipeline): void {
    pipeline.markDirty();
    if (!pipeline.backingOff) this.#enqueue(pipeline);
  }

  #enqueue(pipeline: PartnerPipeline): void {
    if (pipeline.running || this.#ready.includes(pipeline.partnerId)) return;
    this.#ready.push(pipeline.partnerId);
    this.#drainQueue();
  }

  #drainQueue(): void {
    while (this.#active < this.#options.concurrency && this.#ready.length > 0 && this.role === "leader") {
      const id = this.#ready.shift()!;
      const pipeline = this.#pipelines.get(id);
      if (!pipeline || pipeline.running) continue;
      this.#active++;
      pipeline.running = true;
      void pipeline.run(this.#leadership.term).finally(() => {
        pipeline.running = false;
        this.#active--;
        if ((pipeline.dirty || pipeline.watermarkDue) && !pipeline.backingOff) this.#enqueue(pipeline);
        if (this.#active === 0) {
          for (const resolve of this.#idleWaiters) resolve();
          this.#idleWaiters.clear();
        }
        this.#drainQueue();
      });
    }
  }
}
