/**
 * Server-Sent Events: a partner's (or one shop's) event log as one
 * long-lived HTTP response, for browsers (EventSource) and plain clients.
 *
 * A stream is a reader of the log with its position in the client's hands:
 * each event goes out as `id: <seq>` and `data: <event JSON>` (the object of
 * GET /v1/events), so a client that reconnects sends `Last-Event-ID` and
 * reads on from there; nothing about it is stored on the server. It reads a
 * page after its position, writes it, and when caught up waits for a commit
 * of its partner (or its heartbeat) before reading again. Every heartbeat
 * interval, once caught up, it writes `event: cursor` with the scope's head,
 * so a client that hears nothing for longer knows the link is dead, not quiet.
 *
 * A reader slower than the log (a full socket) is given `drainTimeoutMs`,
 * then dropped: it comes back with Last-Event-ID and loses nothing.
 *
 * May import: domain and node. The api serves it; the store reads the log.
 */
import type { OrderEvent } from "../domain/events.ts";

/** One page of the log as GET /v1/events answers it. */
export interface LogPage {
  events: OrderEvent[];
  /** The scope's latest committed seq, read with the page. */
  head_seq: number;
  epoch: string;
}

/** Where a stream writes: a Node response, or anything shaped like one. */
export interface StreamSink {
  write(chunk: string): boolean;
  once(event: "drain" | "close", listener: () => void): unknown;
  off(event: "drain" | "close", listener: () => void): unknown;
  readonly destroyed: boolean;
  end(): unknown;
  destroy(error?: Error): unknown;
}

export interface EventStreamOptions {
  /** Reads the stream's scope after a seq (pages of `pageSize`). */
  read(after: number): Promise<LogPage>;
  pageSize: number;
  /** Calls `wake` whenever an event of the stream's partner may have been committed. */
  subscribe(wake: () => void): () => void;
  heartbeatMs: number;
  drainTimeoutMs: number;
  /** Told why a stream ended early (a read failed, the reader was too slow). */
  onEnded?(reason: "read_failed" | "drain_timeout", error?: unknown): void;
}

/** The lines of one SSE message; `data` is a single line of JSON. */
const message = (fields: { event?: string; id?: number; data: string }): string =>
  `${fields.event === undefined ? "" : `event: ${fields.event}\n`}${fields.id === undefined ? "" : `id: ${fields.id}\n`}data: ${fields.data}\n\n`;

/** How long a client waits before it reconnects (EventSource's `retry`), in ms. */
const RECONNECT_MS = 1_000;

/**
 * Streams `first` and everything after it to `sink` until the client leaves or `stop()` is
 * called. Resolves once the stream has ended.
 */
export const streamEvents = (
  sink: StreamSink,
  first: LogPage,
  after: number,
  options: EventStreamOptions,
) => {
  let closed = false;
  let draining = false;
  let pending = false;
  let wake: (() => void) | undefined;
  const rouse = () => {
    pending = true;
    wake?.();
  };
  const unsubscribe = options.subscribe(rouse);
  const onClose = () => {
    closed = true;
    wake?.();
  };
  sink.once("close", onClose);

  /** Resolves on a commit, the heartbeat, or the end; true when it was the heartbeat. */
  const idle = (): Promise<boolean> =>
    new Promise((resolve) => {
      if (pending || closed) return resolve(false);
      const timer = setTimeout(() => {
        wake = undefined;
        resolve(true);
      }, options.heartbeatMs);
      wake = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve(false);
      };
    });

  /** Waits while the socket is full; false (and the stream dropped) after drainTimeoutMs. */
  const drained = (): Promise<boolean> =>
    new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        sink.off("drain", onDrain);
        sink.off("close", onGone);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onGone = () => done(false);
      const timer = setTimeout(() => done(false), options.drainTimeoutMs);
      sink.once("drain", onDrain);
      sink.once("close", onGone);
    });

  const run = async (): Promise<void> => {
    let position = after;
    let page = first;
    let heartbeatDue = true;
    sink.write(`retry: ${RECONNECT_MS}\n\n`);
    while (!closed) {
      let full = false;
      for (const event of page.events) {
        if (!sink.write(message({ id: event.seq, data: JSON.stringify(event) }))) full = true;
        position = event.seq;
      }
      if (full) {
        draining = true;
        const ok = await drained();
        draining = false;
        if (!ok) {
          if (!closed) options.onEnded?.("drain_timeout");
          sink.destroy();
          return;
        }
      }
      const caughtUp = page.events.length < options.pageSize;
      if (caughtUp && heartbeatDue) {
        // Caught up: every event of the scope up to its head has been written.
        const cursor = { seq: Math.max(page.head_seq, position), epoch: page.epoch };
        sink.write(message({ event: "cursor", id: cursor.seq, data: JSON.stringify(cursor) }));
        position = cursor.seq;
        heartbeatDue = false;
      }
      if (caughtUp) heartbeatDue = await idle();
      if (closed) return;
      pending = false;
      try {
        page = await options.read(position);
      } catch (error) {
        // The client reconnects with Last-Event-ID and is answered from there (or with a problem).
        options.onEnded?.("read_failed", error);
        return;
      }
    }
  };

  const done = run().finally(() => {
    unsubscribe();
    sink.off("close", onClose);
    if (!sink.destroyed) sink.end();
  });
  return {
    done,
    /** Ends the stream (shutdown, access withdrawn); the client may reconnect. */
    stop(): void {
      closed = true;
      wake?.();
      // A reader that stopped reading is not waited for.
      if (draining) sink.destroy();
    },
  };
};

export type EventStream = ReturnType<typeof streamEvents>;
