/**
 * The consumer's public types (options, events, status), its errors, and
 * the shape checks of what arrives over MQTT.
 *
 * Imports domain code and the `mqtt` package only.
 */
import type { IClientOptions } from "mqtt";
import type { Cursor, OrderEvent } from "../domain/events.ts";
import type { PositionStore } from "./position-store.ts";

export interface ConsumerOptions {
  /** Base URL of the HTTP API, e.g. `http://127.0.0.1:8080`. */
  apiUrl: string;
  /** The broker, e.g. `mqtt://127.0.0.1:1883`, `mqtts://…`, `ws://…/mqtt`. */
  mqttUrl: string;
  /** The credential id (also the MQTT username). */
  credentialId: string;
  secret: string;
  /** The partner id; when absent it is read from the first event of the history. */
  partner?: string;
  /** Follow one shop only. Required for a device credential (its shop). */
  shop?: string;
  /** The subscription QoS (default 1). */
  qos?: 0 | 1;
  /** Where the position is kept (default: in memory). */
  store?: PositionStore;
  /** Start after this seq when the store holds no position (default 0: the whole history). */
  after?: number;
  /** Names this consumer's persistent session: client id `{credentialId}-{name}` (default "consumer"). */
  name?: string;
  /** REST page size, 1–1000 (default 1000). */
  pageSize?: number;
  /** REST pages requested ahead while catching up a partner scope (default 2). */
  prefetch?: number;
  /** The server's watermark interval, BREWCAST_WATERMARK_MS (default 5000). */
  watermarkMs?: number;
  /** Watermark intervals without any message before the link counts as dead (default 3). */
  silenceIntervals?: number;
  /** REST poll interval while the push link is healthy (default 60 s). */
  pollIntervalMs?: number;
  /** REST poll interval while the push link is down or silent (default: watermarkMs). */
  degradedPollMs?: number;
  /** Delay between MQTT reconnect attempts (default 1000 ms). */
  reconnectMs?: number;
  /** MQTT keepalive in seconds (default 30). */
  keepaliveSeconds?: number;
  /** The longest a PUBACK is held for an event not yet handled (default 5000 ms). */
  maxAckHoldMs?: number;
  /** Early MQTT arrivals kept while a gap is read from REST (default 10,000); more are dropped and read from REST. */
  maxBuffer?: number;
  /**
   * Spreads a fleet's history reads (default 1000 ms): the catch-up on start and after an MQTT
   * reconnect first waits a random 0 to jitterMs, so consumers that all lost their connection
   * at once (a broker restart, a deploy) do not all ask `GET /v1/events` in the same instant;
   * and a 429's or 503's Retry-After is waited plus a random 0 to jitterMs. 0 turns it off.
   */
  jitterMs?: number;
  /** Backoff of retried handlers, store saves and REST reads (default 100 ms doubling to 30 s). */
  retry?: { initialMs?: number; maxMs?: number };
  /** Timeout of one REST request (default 30 s). */
  requestTimeoutMs?: number;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
  /** Extra MQTT.js options (TLS material, WebSocket options); the session options are the consumer's. */
  mqttOptions?: Partial<IClientOptions>;
}

export type EventHandler = (event: OrderEvent) => unknown;

export type CatchUpReason = "start" | "connect" | "poll" | "gap" | "cursor" | "silence" | "epoch-check";

export type ConsumerPhase = "idle" | "starting" | "catching-up" | "live" | "polling" | "stopped";

/** The consumer's typed events. None is required; `error` is emitted only when someone listens. */
export interface ConsumerEvents {
  /** An MQTT connection attempt begins. */
  connecting: [{ attempt: number }];
  /** The broker accepted the connection; `sessionPresent` is true for a resumed session. */
  connected: [{ sessionPresent: boolean }];
  /** The MQTT connection closed (it is retried), or was dropped for watermark silence. */
  disconnected: [{ reason: "closed" | "silence" }];
  /** A REST catch-up begins: from the position to the scope's head. `count` is exact for a partner scope, null for a shop. */
  "catching-up": [{ reason: CatchUpReason; from: number; to: number; count: number | null }];
  /** Connected and caught up to the head learned after connecting: live events flow. */
  live: [{ seq: number; caughtUp: number; ms: number }];
  /** Events missed by push were read from REST and handed out (`from`, `to`: the position before and after). */
  "gap-filled": [{ reason: CatchUpReason; from: number; to: number; count: number }];
  /** An event was handled and the position saved. */
  handled: [{ seq: number; source: "mqtt" | "rest"; event: OrderEvent }];
  /** A cursor arrived (retained, or a watermark). */
  cursor: [{ seq: number; publishedAt: string }];
  /** The log changed (epoch) or the position is older than the retained history: the consumer stopped. */
  resync: [
    {
      reason: "epoch-changed" | "cursor-expired";
      storedEpoch: string | null;
      epoch: string | null;
      seq: number;
    },
  ];
  /**
   * The position is past the head of the partner's log (an `after` beyond it): nothing is
   * handed out until the log passes it. Partner scope only (a shop's head is not the log's).
   */
  ahead: [{ seq: number; head: number }];
  /**
   * Something failed and is retried after `retryInMs` (the network, 408, 429, 5xx, an MQTT
   * reconnect), or stopped the consumer (`fatal`: `run()` rejects with the same error).
   */
  error: [
    {
      error: Error;
      during: "handler" | "store" | "rest" | "mqtt" | "message" | "gap";
      seq?: number;
      attempt?: number;
      retryInMs?: number;
      fatal?: boolean;
    },
  ];
  stopped: [];
}

/** Stops the consumer: its position belongs to another log (or to history that is gone). */
export class ResyncRequiredError extends Error {
  readonly reason: "epoch-changed" | "cursor-expired";
  readonly storedEpoch: string | null;
  readonly epoch: string | null;
  readonly seq: number;
  constructor(
    reason: "epoch-changed" | "cursor-expired",
    storedEpoch: string | null,
    epoch: string | null,
    seq: number,
  ) {
    super(
      reason === "epoch-changed"
        ? `the event log changed (epoch ${storedEpoch} → ${epoch}): reload state and start from a new position`
        : `position ${seq} is older than the retained history: reload state and start from a new position`,
    );
    this.name = "ResyncRequiredError";
    this.reason = reason;
    this.storedEpoch = storedEpoch;
    this.epoch = epoch;
    this.seq = seq;
  }
}

export class StoppedError extends Error {
  constructor() {
    super("consumer stopped");
    this.name = "StoppedError";
  }
}

/** The options name what the credential cannot read (another partner): asking again cannot help. */
export class ScopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ScopeError";
  }
}

export interface Pending {
  event: OrderEvent;
  ack: () => void;
}

export interface ConsumerStatus {
  phase: ConsumerPhase;
  /** The last handled seq. */
  seq: number;
  epoch: string | null;
  /** The highest head seen (cursor or REST). */
  head: number;
  connected: boolean;
  /** occurred_at of the last handled event. */
  lastOccurredAt: string | null;
  handled: number;
}

export const noop = () => {};

export const looksLikeEvent = (value: unknown): value is OrderEvent => {
  const v = value as OrderEvent;
  return (
    typeof v === "object" &&
    v !== null &&
    Number.isSafeInteger(v.seq) &&
    typeof v.epoch === "string" &&
    typeof v.shop_id === "string" &&
    (v.prev_shop_seq === null || Number.isSafeInteger(v.prev_shop_seq))
  );
};

export const looksLikeCursor = (value: unknown): value is Cursor => {
  const v = value as Cursor;
  return typeof v === "object" && v !== null && Number.isSafeInteger(v.seq) && typeof v.epoch === "string";
};
