/**
 * The consumer: MQTT push as the trigger, the REST history as the truth, one
 * position for both. The application gives a handler; the consumer hands it
 * every event of its scope once, in seq order, whatever the network did.
 *
 * How:
 * - A persistent MQTT session (fixed client id, clean: false, MQTT 3.1.1)
 *   subscribed to the scope's events and its retained cursor.
 * - On start and on every (re)connect (also a resumed session, to which
 *   Aedes sends no retained messages) it reads `GET /v1/events?after=` page
 *   by page until the scope's `head_seq`, then it is live.
 * - Live, an event is handed out only when it is the next one: seq + 1 for a
 *   partner scope, `prev_shop_seq <= position` for a shop scope. Older ones
 *   (duplicates: MQTT redelivers without a dup flag) are dropped; later ones
 *   wait in a bounded buffer while the gap is read from REST.
 * - The retained cursor, re-published every watermark interval, tells it
 *   the head (a cursor ahead of what arrived is a gap) and that the link is
 *   alive; when it stops for `silenceIntervals` intervals the consumer
 *   reconnects and polls REST meanwhile. Healthy, it still polls every
 *   `pollIntervalMs`.
 * - The position is saved after the handler finished; a handler that throws
 *   is retried with backoff and the position does not move. The PUBACK of a
 *   live event is held until it was handled (at most `maxAckHoldMs`).
 * - An epoch other than the position's (the log was reset or restored), or
 *   a position older than the retained history, stops it with a `resync`
 *   event and a ResyncRequiredError instead of mixing two logs.
 * - Only what can heal is retried (the network, 408, 429, 5xx, MQTT
 *   reconnects), each retry reported as an `error` event with `retryInMs`.
 *   An answer that would be the same again (any other 4xx, CONNACK 2 or 4,
 *   a refused subscription, a partner other than the credential's) stops it:
 *   one `error` event with `fatal: true`, and `run()` rejects with that error.
 * - It emits typed events for its state and never logs.
 *
 * Imports domain code and the `mqtt` package only, so it ships on its own.
 *
 * Longer than the ~400 lines a file of src/ keeps to, on purpose: it is one
 * state machine over one position, and push, poll, reconnect and catch-up
 * all read and move the same fields; split into classes, each would reach
 * into the others' state. Its types and shape checks are in consumer-types.ts.
 */
import { EventEmitter } from "node:events";
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import type { Cursor, OrderEvent } from "../domain/events.ts";
import { buildPartnerCursorTopic, buildShopCursorTopic } from "../domain/topics.ts";
import { ApiError, createEventsApi, type EventsApi, type EventsPage } from "./events-api.ts";
import { createMemoryStore, type Position, type PositionStore } from "./position-store.ts";

export type { OrderEvent } from "../domain/events.ts";

import {
  type CatchUpReason,
  type ConsumerEvents,
  type ConsumerOptions,
  type ConsumerPhase,
  type ConsumerStatus,
  type EventHandler,
  looksLikeCursor,
  looksLikeEvent,
  noop,
  type Pending,
  ResyncRequiredError,
  ScopeError,
  StoppedError,
} from "./consumer-types.ts";

export class Consumer extends EventEmitter<ConsumerEvents> {
  readonly #o: Required<
    Omit<ConsumerOptions, "partner" | "shop" | "store" | "fetch" | "mqttOptions" | "retry">
  > & { retryInitialMs: number; retryMaxMs: number };
  readonly #store: PositionStore;
  readonly #api: EventsApi;
  readonly #shop: string | undefined;
  #partner: string | undefined;
  #handler: EventHandler | undefined;

  #phase: ConsumerPhase = "idle";
  #pos: Position = { seq: 0, epoch: null };
  #head = 0;
  #lastOccurredAt: string | null = null;
  #handledCount = 0;
  /** Early MQTT arrivals by seq. */
  readonly #buffer = new Map<number, Pending>();
  /** The seq being handled, 0 when none. */
  #inflight = 0;

  #client: MqttClient | undefined;
  #connected = false;
  /** Bumped when a connection closes: acks of an older connection are not sent on a newer one. */
  #connection = 0;
  #connectedAt = 0;
  #liveSinceConnect = false;
  #caughtUpSinceConnect = 0;
  #lastSignalAt = 0;
  #attempt = 0;
  /** The next catch-up waits a random share of jitterMs first (set on start and on a reconnect). */
  #jitterNext = true;
  #everConnected = false;

  #wanted: CatchUpReason | undefined;
  #pumping: Promise<void> | undefined;
  #again = false;
  #pumpFailures = 0;

  #pollTimer: NodeJS.Timeout | undefined;
  #silenceTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #abort = new AbortController();
  #stopped = false;
  #settle: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(options: ConsumerOptions) {
    super();
    const watermarkMs = options.watermarkMs ?? 5_000;
    const pageSize = options.pageSize ?? 1000;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000)
      throw new RangeError("pageSize must be 1 to 1000");
    this.#o = {
      apiUrl: options.apiUrl,
      mqttUrl: options.mqttUrl,
      credentialId: options.credentialId,
      secret: options.secret,
      qos: options.qos ?? 1,
      after: options.after ?? 0,
      name: options.name ?? "consumer",
      pageSize,
      prefetch: Math.max(1, options.prefetch ?? 2),
      watermarkMs,
      silenceIntervals: options.silenceIntervals ?? 3,
      pollIntervalMs: options.pollIntervalMs ?? 60_000,
      degradedPollMs: options.degradedPollMs ?? watermarkMs,
      reconnectMs: options.reconnectMs ?? 1_000,
      keepaliveSeconds: options.keepaliveSeconds ?? 30,
      maxAckHoldMs: options.maxAckHoldMs ?? 5_000,
      maxBuffer: options.maxBuffer ?? 10_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      jitterMs: Math.max(0, options.jitterMs ?? 1_000),
      retryInitialMs: options.retry?.initialMs ?? 100,
      retryMaxMs: options.retry?.maxMs ?? 30_000,
    };
    this.#partner = options.partner;
    this.#shop = options.shop;
    // Validate ids early (the topic builders throw on a bad slug, an empty one included).
    if (this.#partner !== undefined) this.#topics(this.#partner);
    if (this.#shop !== undefined) buildShopCursorTopic("partner", this.#shop);
    this.#store = options.store ?? createMemoryStore();
    this.#api = createEventsApi({
      apiUrl: options.apiUrl,
      secret: options.secret,
      shop: options.shop,
      timeoutMs: this.#o.requestTimeoutMs,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    this.#mqttExtra = options.mqttOptions ?? {};
  }

  readonly #mqttExtra: Partial<IClientOptions>;

  /** The MQTT client id of this consumer's persistent session. */
  get clientId(): string {
    return `${this.#o.credentialId}-${this.#o.name}`;
  }

  status(): ConsumerStatus {
    return {
      phase: this.#phase,
      seq: this.#pos.seq,
      epoch: this.#pos.epoch,
      head: Math.max(this.#head, this.#pos.seq),
      connected: this.#connected,
      lastOccurredAt: this.#lastOccurredAt,
      handled: this.#handledCount,
    };
  }

  /**
   * Starts consuming. Resolves when `stop()` was called and the handler in
   * progress finished; rejects with ResyncRequiredError on an epoch change
   * or an expired position, or with the error that made it give up: an
   * ApiError that retrying cannot heal (400, 401, 403, 404, …), bad MQTT
   * credentials, a refused subscription.
   */
  run(handler: EventHandler): Promise<void> {
    if (this.#phase !== "idle") throw new Error("a consumer runs once; create another");
    this.#handler = handler;
    this.#phase = "starting";
    const done = new Promise<void>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    void this.#start().catch((error) => this.#fail(error as Error, "store"));
    return done;
  }

  /** Stops: no event is handed out after this resolves; the position is that of the last handled event. */
  async stop(): Promise<void> {
    if (this.#stopped) {
      await this.#pumping?.catch(noop);
      return;
    }
    await this.#shutdown();
    this.#settle?.resolve();
  }

  // ------------------------------------------------------------------ lifecycle

  async #start(): Promise<void> {
    const saved = await this.#store.load();
    this.#pos = saved ?? { seq: this.#o.after, epoch: null };
    this.#head = this.#pos.seq;
    if (this.#stopped) return;
    this.#phase = "catching-up";
    // Discovery reads what the first catch-up would (nothing while it finds no event), so
    // the catch-up waits for it: one loop retries and reports a failing API, not two.
    if (this.#partner === undefined) {
      await this.#spread();
      await this.#discoverPartner();
    }
    if (this.#stopped) return;
    this.#want("start");
    this.#armPoll();
    this.#connect();
  }

  /** Reads the partner id off the history (a credential belongs to one partner). */
  async #discoverPartner(): Promise<void> {
    for (let attempt = 1; !this.#stopped; ) {
      try {
        const after = Math.max(0, this.#pos.seq - 1);
        const page = await this.#api.page(after, 1, this.#abort.signal);
        this.#checkEpoch(page.epoch);
        this.#checkAhead(page.head_seq);
        const event = page.events[0];
        if (event) {
          this.#partner = event.partner_id;
          return;
        }
        attempt = 1;
      } catch (error) {
        if (this.#stopped) return;
        if (this.#stopsForGood(error as Error)) throw new StoppedError();
        const retryInMs = this.#retryDelay(error as Error, attempt);
        this.#emitError({ error: error as Error, during: "rest", attempt, retryInMs });
        attempt++;
        await this.#sleep(retryInMs);
        continue;
      }
      // No event yet: nothing to subscribe to can be named; REST polling covers us meanwhile.
      await this.#sleep(this.#o.degradedPollMs);
    }
  }

  #topics(partner: string): string[] {
    if (this.#shop !== undefined) {
      const cursor = buildShopCursorTopic(partner, this.#shop);
      return [`${cursor.slice(0, -"cursor".length)}orders/+`, cursor];
    }
    const cursor = buildPartnerCursorTopic(partner);
    return [`partners/${partner}/shops/+/orders/+`, cursor];
  }

  #connect(): void {
    const partner = this.#partner!;
    const topics = this.#topics(partner);
    this.#attempt = 1;
    this.emit("connecting", { attempt: this.#attempt });
    const client = mqtt.connect(this.#o.mqttUrl, {
      ...this.#mqttExtra,
      protocolVersion: 4,
      clientId: this.clientId,
      clean: false,
      username: this.#o.credentialId,
      password: this.#o.secret,
      keepalive: this.#o.keepaliveSeconds,
      reconnectPeriod: this.#o.reconnectMs,
      connectTimeout: Math.max(5_000, this.#o.watermarkMs),
      reconnectOnConnackError: true,
      resubscribe: false,
    });
    this.#client = client;
    // Hold the PUBACK until the event was handled: MQTT.js acks when this callback is called.
    client.handleMessage = (packet, callback) => this.#onPublish(packet, callback);
    client.on("connect", (connack) => {
      this.#connected = true;
      this.#connectedAt = Date.now();
      this.#lastSignalAt = Date.now();
      this.#liveSinceConnect = false;
      this.#caughtUpSinceConnect = 0;
      // The start's read was spread already; a reconnect's is spread now.
      if (this.#everConnected) this.#jitterNext = true;
      this.#everConnected = true;
      if (this.#phase !== "stopped") this.#phase = "catching-up";
      this.emit("connected", { sessionPresent: connack.sessionPresent });
      // Subscribe on every connect, also when the session was resumed: a connection cut
      // between CONNACK and SUBACK leaves a present session without the subscription.
      // Re-subscribing replaces the subscription [MQTT-3.8.4-3] and brings the retained cursor.
      client.subscribe(
        Object.fromEntries(
          topics.map((topic) => [topic, { qos: topic.endsWith("/cursor") ? 1 : this.#o.qos }] as const),
        ),
        (error, _granted, suback) => {
          if (this.#stopped) return;
          // MQTT.js reports a refusal as an error carrying the SUBACK, codes in topic order.
          const codes =
            suback?.granted ??
            (error as (Error & { packet?: { granted?: unknown[] } }) | null)?.packet?.granted;
          const refused = Array.isArray(codes)
            ? codes.findIndex((code) => typeof code === "number" && (code & 0x80) !== 0)
            : -1;
          if (refused >= 0) {
            this.#fail(
              new ScopeError(
                `subscription to ${topics[refused]} refused (SUBACK 0x80): the credential may not read it; check partner and shop`,
              ),
              "mqtt",
            );
          } else if (error && this.#connected) {
            this.#emitError({ error, during: "mqtt" });
          }
        },
      );
      this.#want("connect");
      this.#armPoll();
      this.#armSilence();
    });
    client.on("reconnect", () => {
      this.#attempt++;
      this.emit("connecting", { attempt: this.#attempt });
    });
    client.on("close", () => {
      this.#connection++;
      if (!this.#connected) return;
      this.#connected = false;
      this.#liveSinceConnect = false;
      if (!this.#stopped && this.#phase === "live") this.#phase = "polling";
      this.emit("disconnected", { reason: "closed" });
      this.#armPoll();
    });
    client.on("error", (error) => {
      if (this.#stopped) return;
      const code = (error as Error & { code?: number }).code;
      // CONNACK 4: bad user name or password; 2: client id refused. Retrying will not help.
      if (code === 4 || code === 2) {
        this.#fail(error, "mqtt");
        return;
      }
      this.#emitError({ error, during: "mqtt", attempt: this.#attempt, retryInMs: this.#o.reconnectMs });
    });
  }

  async #shutdown(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#phase = "stopped";
    this.#abort.abort();
    clearTimeout(this.#pollTimer);
    clearInterval(this.#silenceTimer);
    clearTimeout(this.#retryTimer);
    const client = this.#client;
    if (client) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => client.end(true, {}, () => resolve()), 2_000);
        client.end(false, {}, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await this.#pumping?.catch(noop);
    this.emit("stopped");
  }

  #fail(error: Error, during: ConsumerEvents["error"][0]["during"] = "rest"): void {
    if (this.#stopped) return;
    if (error instanceof StoppedError) return;
    if (!(error instanceof ResyncRequiredError)) this.#emitError({ error, during, fatal: true });
    void this.#shutdown().then(() => this.#settle?.reject(error));
  }

  /**
   * Stops the consumer when retrying `error` cannot help: a resync, an expired position,
   * an answer that would be the same again, options naming what the credential cannot
   * read. Returns false for what can heal.
   */
  #stopsForGood(error: Error): boolean {
    if (error instanceof ResyncRequiredError) {
      this.emit("resync", {
        reason: error.reason,
        storedEpoch: error.storedEpoch,
        epoch: error.epoch,
        seq: error.seq,
      });
      this.#fail(error);
      return true;
    }
    if (error instanceof ApiError && error.status === 410) {
      const resync = new ResyncRequiredError(
        "cursor-expired",
        this.#pos.epoch,
        this.#pos.epoch,
        this.#pos.seq,
      );
      this.emit("resync", {
        reason: "cursor-expired",
        storedEpoch: this.#pos.epoch,
        epoch: null,
        seq: this.#pos.seq,
      });
      this.#fail(resync);
      return true;
    }
    if ((error instanceof ApiError && error.permanent) || error instanceof ScopeError) {
      this.#fail(error);
      return true;
    }
    return false;
  }

  /**
   * The backoff of a retry, at least what a 429 or 503 asked for, plus jitter then: a fleet told
   * "1 second" at once must not come back at once.
   */
  #retryDelay(error: Error, attempt: number): number {
    const asked = error instanceof ApiError ? (error.retryAfterMs ?? 0) : 0;
    if (asked === 0) return this.#backoff(attempt);
    const spread = asked + Math.random() * this.#o.jitterMs;
    return Math.round(Math.max(this.#backoff(attempt), Math.min(spread, this.#o.retryMaxMs)));
  }

  #emitError(info: ConsumerEvents["error"][0]): void {
    if (this.listenerCount("error") > 0) this.emit("error", info);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#stopped) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#abort.signal.addEventListener("abort", done, { once: true });
    });
  }

  /** Waits a random 0 to jitterMs when a start's or a reconnect's history read is next (see jitterMs). */
  async #spread(): Promise<void> {
    if (!this.#jitterNext) return;
    this.#jitterNext = false;
    if (this.#o.jitterMs > 0) await this.#sleep(Math.random() * this.#o.jitterMs);
  }

  #backoff(attempt: number): number {
    return Math.min(this.#o.retryInitialMs * 2 ** (attempt - 1), this.#o.retryMaxMs);
  }

  // ------------------------------------------------------------------ timers

  #healthy(): boolean {
    return (
      this.#connected && Date.now() - this.#lastSignalAt <= this.#o.silenceIntervals * this.#o.watermarkMs
    );
  }

  /** The REST poll: slow while push is healthy, fast while it is down or silent. */
  #armPoll(): void {
    if (this.#stopped) return;
    clearTimeout(this.#pollTimer);
    const ms = this.#healthy() ? this.#o.pollIntervalMs : this.#o.degradedPollMs;
    this.#pollTimer = setTimeout(() => {
      this.#want("poll");
      this.#armPoll();
    }, ms);
    this.#pollTimer.unref?.();
  }

  #armSilence(): void {
    if (this.#silenceTimer || this.#stopped) return;
    const every = Math.max(50, Math.floor(this.#o.watermarkMs / 2));
    this.#silenceTimer = setInterval(() => {
      if (!this.#connected || this.#stopped) return;
      if (Date.now() - this.#lastSignalAt <= this.#o.silenceIntervals * this.#o.watermarkMs) return;
      // No watermark for several intervals: the link is dead even if TCP says otherwise.
      this.#connected = false;
      this.#liveSinceConnect = false;
      if (this.#phase === "live") this.#phase = "polling";
      this.emit("disconnected", { reason: "silence" });
      this.#client?.stream?.destroy();
      this.#want("silence");
      this.#armPoll();
    }, every);
    this.#silenceTimer.unref?.();
  }

  // ------------------------------------------------------------------ MQTT input

  #onPublish(packet: IPublishPacket, callback: (error?: Error) => void): void {
    const connection = this.#connection;
    let acked = false;
    let holdTimer: NodeJS.Timeout | undefined;
    const ack = () => {
      if (acked) return;
      acked = true;
      clearTimeout(holdTimer);
      // An ack for a closed connection must not reach the next one (its message ids are reused).
      if (connection === this.#connection && !this.#stopped) callback();
    };
    if (this.#stopped) return;
    this.#lastSignalAt = Date.now();
    let body: unknown;
    try {
      body = JSON.parse(packet.payload.toString());
    } catch (error) {
      ack();
      this.#emitError({ error: error as Error, during: "message" });
      return;
    }
    if (packet.topic.endsWith("/cursor")) {
      ack();
      if (looksLikeCursor(body)) this.#onCursor(body);
      return;
    }
    if (!looksLikeEvent(body)) {
      ack();
      this.#emitError({ error: new Error(`not an event on ${packet.topic}`), during: "message" });
      return;
    }
    if (this.#shop !== undefined && body.shop_id !== this.#shop) {
      ack();
      return;
    }
    if (this.#pos.epoch !== null && body.epoch !== this.#pos.epoch) {
      // REST decides whether the log really changed.
      ack();
      this.#want("epoch-check");
      return;
    }
    if (body.seq <= this.#pos.seq || body.seq === this.#inflight || this.#buffer.has(body.seq)) {
      ack();
      return;
    }
    if (this.#buffer.size >= this.#o.maxBuffer) {
      // REST has it; the buffer only saves a round trip.
      ack();
      this.#want("gap");
      return;
    }
    this.#buffer.set(body.seq, { event: body, ack });
    if (this.#phase === "live") {
      holdTimer = setTimeout(ack, this.#o.maxAckHoldMs);
      holdTimer.unref?.();
    } else {
      // Catching up: keep the stream flowing (a stalled reader stalls the broker's other subscribers).
      ack();
    }
    this.#kick();
  }

  #onCursor(cursor: Cursor): void {
    this.emit("cursor", { seq: cursor.seq, publishedAt: cursor.published_at });
    if (this.#pos.epoch !== null && cursor.epoch !== this.#pos.epoch) {
      this.#want("epoch-check");
      return;
    }
    if (cursor.seq > this.#head) this.#head = cursor.seq;
    // Events go out before the cursor that covers them, on the same connection: a cursor
    // ahead of everything received means push lost something.
    let highest = Math.max(this.#pos.seq, this.#inflight);
    for (const seq of this.#buffer.keys()) if (seq > highest) highest = seq;
    if (cursor.seq > highest) this.#want("cursor");
  }

  // ------------------------------------------------------------------ the pump

  #want(reason: CatchUpReason): void {
    if (this.#stopped) return;
    // The first reason wins the label; any later one only asks for another read.
    this.#wanted ??= reason;
    this.#kick();
  }

  /** Runs the pump; one at a time, re-run when asked while running. */
  #kick(): void {
    if (this.#stopped) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = (async () => {
      try {
        do {
          this.#again = false;
          await this.#pumpOnce();
        } while (this.#again && !this.#stopped);
        this.#pumpFailures = 0;
      } catch (error) {
        this.#onPumpError(error as Error);
      } finally {
        this.#pumping = undefined;
      }
    })();
  }

  #onPumpError(error: Error): void {
    if (this.#stopped || error instanceof StoppedError) return;
    if (this.#stopsForGood(error)) return;
    this.#pumpFailures++;
    const retryInMs = this.#retryDelay(error, this.#pumpFailures);
    this.#emitError({ error, during: "rest", attempt: this.#pumpFailures, retryInMs });
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#kick(), retryInMs);
    this.#retryTimer.unref?.();
  }

  async #pumpOnce(): Promise<void> {
    let gapReads = 0;
    while (!this.#stopped) {
      await this.#drain();
      const reason = this.#wanted;
      if (reason !== undefined) {
        this.#wanted = undefined;
        try {
          await this.#catchUp(reason);
        } catch (error) {
          this.#wanted ??= reason;
          throw error;
        }
        continue;
      }
      if (this.#buffer.size === 0) return;
      // The smallest buffered event is not the next one: a gap.
      if (gapReads === 0 || this.#lastCatchUpCount > 0) {
        gapReads++;
        this.#wanted = "gap";
        continue;
      }
      // REST had nothing newer than our position, yet push is ahead: drop the buffer; the
      // cursor and the poll bring these events back through REST.
      for (const pending of this.#buffer.values()) pending.ack();
      this.#buffer.clear();
      this.#emitError({
        error: new Error("buffered events beyond the REST head were dropped"),
        during: "gap",
      });
      return;
    }
  }

  #lastCatchUpCount = 0;

  /** Hands out buffered events that are next, drops those already handled. */
  async #drain(): Promise<void> {
    while (this.#buffer.size > 0 && !this.#stopped) {
      const seqs = [...this.#buffer.keys()].sort((a, b) => a - b);
      let progressed = false;
      for (const seq of seqs) {
        const pending = this.#buffer.get(seq)!;
        if (seq <= this.#pos.seq) {
          this.#buffer.delete(seq);
          pending.ack();
          progressed = true;
          continue;
        }
        if (!this.#isNext(pending.event)) break;
        this.#checkEpoch(pending.event.epoch);
        await this.#deliver(pending.event, "mqtt");
        this.#buffer.delete(seq);
        pending.ack();
        progressed = true;
      }
      if (!progressed) return;
    }
  }

  #aheadReported = false;

  /** Says once (until the log catches up) that the position is past the partner's head. */
  #checkAhead(head: number): void {
    if (this.#shop !== undefined) return;
    if (head >= this.#pos.seq) {
      this.#aheadReported = false;
      return;
    }
    if (this.#aheadReported) return;
    this.#aheadReported = true;
    this.emit("ahead", { seq: this.#pos.seq, head });
  }

  #isNext(event: OrderEvent): boolean {
    if (event.seq <= this.#pos.seq) return false;
    if (this.#shop === undefined) return event.seq === this.#pos.seq + 1;
    return (event.prev_shop_seq ?? 0) <= this.#pos.seq;
  }

  #checkEpoch(epoch: string): void {
    if (this.#pos.epoch === null) {
      this.#pos = { seq: this.#pos.seq, epoch };
      return;
    }
    if (epoch !== this.#pos.epoch) {
      throw new ResyncRequiredError("epoch-changed", this.#pos.epoch, epoch, this.#pos.seq);
    }
  }

  /** Reads REST from the position to the head, a page ahead, handing out each event. */
  async #catchUp(reason: CatchUpReason): Promise<void> {
    await this.#spread();
    if (this.#stopped) throw new StoppedError();
    const from = this.#pos.seq;
    const limit = this.#o.pageSize;
    const signal = this.#abort.signal;
    const read = (after: number) => {
      const promise = this.#api.page(after, limit, signal);
      promise.catch(noop); // awaited below; a prefetch must not become an unhandled rejection
      return promise;
    };
    // Pages in flight, oldest first. A partner's seq is gapless, so the page after a full page
    // starts `limit` further on: up to `prefetch` pages are requested ahead (the server's query
    // and our parsing overlap). A shop's pages are chained on the last seq, one ahead.
    const inFlight: { after: number; page: Promise<EventsPage> }[] = [{ after: from, page: read(from) }];
    const depth = this.#shop === undefined ? this.#o.prefetch : 1;
    let count = 0;
    let announced = false;
    const connectedBefore = this.#connected;
    const connection = this.#connection;
    while (inFlight.length > 0) {
      const { after, page: pending } = inFlight.shift()!;
      if (after !== this.#pos.seq && after > this.#pos.seq) {
        // A guessed page does not start where we are (a short page before it): guess again.
        inFlight.length = 0;
        inFlight.push({ after: this.#pos.seq, page: read(this.#pos.seq) });
        continue;
      }
      const page = await pending;
      if (this.#stopped) throw new StoppedError();
      this.#checkEpoch(page.epoch);
      if (page.head_seq > this.#head) this.#head = page.head_seq;
      this.#checkAhead(page.head_seq);
      if (!announced && page.head_seq > this.#pos.seq) {
        announced = true;
        this.emit("catching-up", {
          reason,
          from: this.#pos.seq,
          to: page.head_seq,
          count: this.#shop === undefined ? page.head_seq - this.#pos.seq : null,
        });
      }
      const events = page.events;
      const last = events.at(-1);
      const more = last !== undefined && events.length === limit && last.seq < page.head_seq;
      if (!more) inFlight.length = 0;
      else {
        let nextAfter = inFlight.at(-1)?.after ?? last.seq;
        if (inFlight.length === 0) inFlight.push({ after: nextAfter, page: read(nextAfter) });
        while (inFlight.length < depth && nextAfter + limit < page.head_seq) {
          nextAfter += limit;
          inFlight.push({ after: nextAfter, page: read(nextAfter) });
        }
      }
      for (const event of events) {
        if (event.seq <= this.#pos.seq) continue;
        if (this.#partner !== undefined && event.partner_id !== this.#partner) {
          throw new ScopeError(
            `partner is ${this.#partner}, but the credential reads partner ${event.partner_id}'s events: check partner`,
          );
        }
        await this.#deliver(event, "rest");
        count++;
      }
    }
    this.#lastCatchUpCount = count;
    if (count > 0 && reason !== "start" && reason !== "connect" && this.#liveSinceConnect) {
      this.emit("gap-filled", { reason, from, to: this.#pos.seq, count });
    }
    // Live once caught up to a head read after the current connection was made.
    if (connectedBefore && this.#connected && connection === this.#connection) {
      this.#caughtUpSinceConnect += count;
      if (!this.#liveSinceConnect) {
        this.#liveSinceConnect = true;
        this.#phase = "live";
        this.#armPoll();
        this.emit("live", {
          seq: this.#pos.seq,
          caughtUp: this.#caughtUpSinceConnect,
          ms: Date.now() - this.#connectedAt,
        });
      }
    } else {
      this.#caughtUpSinceConnect += count;
      if (!this.#connected) this.#phase = "polling";
    }
  }

  /** Runs the handler until it succeeds, then saves the position. */
  async #deliver(event: OrderEvent, source: "mqtt" | "rest"): Promise<void> {
    const handler = this.#handler!;
    this.#inflight = event.seq;
    try {
      for (let attempt = 1; ; attempt++) {
        if (this.#stopped) throw new StoppedError();
        try {
          await handler(event);
          break;
        } catch (error) {
          if (this.#stopped) throw new StoppedError();
          const retryInMs = this.#backoff(attempt);
          this.#emitError({ error: error as Error, during: "handler", seq: event.seq, attempt, retryInMs });
          await this.#sleep(retryInMs);
        }
      }
      const position = { seq: event.seq, epoch: event.epoch };
      for (let attempt = 1; ; attempt++) {
        try {
          await this.#store.save(position);
          break;
        } catch (error) {
          // The event was handled; stopping here replays it, which at-least-once allows.
          if (this.#stopped) throw new StoppedError();
          const retryInMs = this.#backoff(attempt);
          this.#emitError({ error: error as Error, during: "store", seq: event.seq, attempt, retryInMs });
          await this.#sleep(retryInMs);
        }
      }
      this.#pos = position;
      this.#lastOccurredAt = event.occurred_at;
      this.#handledCount++;
    } finally {
      this.#inflight = 0;
    }
    if (this.listenerCount("handled") > 0) this.emit("handled", { seq: event.seq, source, event });
  }
}

export const createConsumer = (options: ConsumerOptions): Consumer => new Consumer(options);
