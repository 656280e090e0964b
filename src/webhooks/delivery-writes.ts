/**
 * The endpoints' database writes, behind their requests: the attempts'
 * records and the positions' compare and set, grouped.
 *
 * Why: written one by one (a transaction for each attempt and another for
 * each position) they cost several times the POST itself, and the worker
 * waited for them. Here a worker only hands them over (`forEndpoint`):
 * - `attempt()` buffers an attempt's record;
 * - `settle(seq)` says every event up to `seq` was answered 2xx or passed over;
 * and a flush writes what every endpoint has buffered (at most `maxAttempts`
 * records) and each one's highest settled seq, in ONE statement
 * (store.recordDeliveries). One flush at a time, at most one every
 * `intervalMs` (sooner when `maxAttempts` records wait): the longer the
 * database takes, the more each flush carries (group commit). The requests
 * never wait for it; a worker waits only to re-read its position (a replay).
 *
 * Guarantees: a position never passes an event that was not settled, and the
 * records of the attempts it covers are in the same statement or an earlier
 * one. A crash loses at most the buffers: the positions stay behind, so those
 * events are sent again (at least once), never skipped. A failed compare and
 * set (a replay moved the position) makes that endpoint's writes `stale`: its
 * worker drains them, re-reads the position and goes on from there.
 *
 * The bounded history is trimmed every `trimEvery` records of an endpoint,
 * not per record.
 */
import type { Logger } from "pino";
import type { AttemptInput, DeliveryWrite, WebhookPosition, WebhookStore } from "../domain/webhooks.ts";

export interface DeliveryWriterOptions {
  store: Pick<WebhookStore, "recordDeliveries" | "trimAttempts">;
  log: Logger;
  /** Records per statement (default 500). */
  maxAttempts?: number;
  /** Trim an endpoint's history after this many of its records (default 100). */
  trimEvery?: number;
  /** After a failed write, try again this much later (default 1 s). */
  retryMs?: number;
  /** A flush starts at most this often (default 10 ms). */
  intervalMs?: number;
}

/** One endpoint's side of the writer. */
export interface DeliveryWrites {
  /** A replay moved the position under us: drain, re-read it, `reset`. */
  readonly stale: boolean;
  attempt(record: AttemptInput): void;
  settle(seq: number): void;
  /** Writes everything this endpoint handed over so far; throws the last write error, if any. */
  drain(): Promise<void>;
  /** After a re-read of the position (call only once drained). */
  reset(position: WebhookPosition): void;
  /** The endpoint is gone or its worker stopped: forget it (after a drain). */
  close(): void;
}

export interface DeliveryWriter {
  forEndpoint(endpointId: string): DeliveryWrites;
}

interface EndpointState {
  id: string;
  buffer: AttemptInput[];
  durable: WebhookPosition;
  settled: number;
  stale: boolean;
  sinceTrim: number;
  failure: unknown;
}

export const createDeliveryWriter = (options: DeliveryWriterOptions): DeliveryWriter => {
  const { store, log } = options;
  const maxAttempts = options.maxAttempts ?? 500;
  const trimEvery = options.trimEvery ?? 100;
  const retryMs = options.retryMs ?? 1_000;
  const intervalMs = options.intervalMs ?? 10;
  let lastStart = 0;
  let buffered = 0;
  /** Endpoints with something owed. */
  const dirty = new Set<EndpointState>();
  let running: Promise<void> | undefined;
  let scheduled = false;

  const positionOwed = (e: EndpointState) => !e.stale && e.settled > e.durable.position;
  const owes = (e: EndpointState) => e.buffer.length > 0 || positionOwed(e);

  const flushOnce = async () => {
    const writes: DeliveryWrite[] = [];
    const taken: { state: EndpointState; next: number | undefined; records: number }[] = [];
    let room = maxAttempts;
    for (const e of dirty) {
      if (!owes(e)) {
        dirty.delete(e);
        continue;
      }
      if (room <= 0 && e.buffer.length > 0) continue;
      const records = e.buffer.length > room ? e.buffer.splice(0, room) : e.buffer;
      if (records === e.buffer) e.buffer = [];
      room -= records.length;
      buffered -= records.length;
      // A position may only cover attempts written in this statement or before.
      const next = positionOwed(e) && e.buffer.length === 0 ? e.settled : undefined;
      writes.push({
        endpointId: e.id,
        attempts: records,
        ...(next === undefined ? {} : { move: { expected: e.durable, next } }),
      });
      taken.push({ state: e, next, records: records.length });
      if (!owes(e)) dirty.delete(e);
    }
    if (writes.length === 0) return;
    let moved: Set<string>;
    try {
      moved = await store.recordDeliveries(writes);
    } catch (error) {
      // The positions stay where they were (events sent again, never skipped); the records of
      // this flush are lost (the history is a diagnostic, not the truth).
      for (const { state } of taken) {
        state.failure = error;
        dirty.add(state);
      }
      throw error;
    }
    const toTrim: string[] = [];
    for (const { state, next, records } of taken) {
      state.failure = undefined;
      if (next !== undefined) {
        if (moved.has(state.id)) state.durable = { position: next, generation: state.durable.generation };
        else state.stale = true;
      }
      state.sinceTrim += records;
      if (state.sinceTrim >= trimEvery) {
        state.sinceTrim = 0;
        toTrim.push(state.id);
      }
    }
    if (toTrim.length > 0) await store.trimAttempts(toTrim);
  };

  const start = () => {
    scheduled = false;
    if (running) return;
    lastStart = performance.now();
    running = (async () => {
      try {
        await flushOnce();
      } catch (error) {
        log.warn({ err: error }, "could not record webhook attempts or positions");
        setTimeout(kick, retryMs).unref();
      }
    })().finally(() => {
      running = undefined;
      if ([...dirty].some(owes)) kick();
    });
  };
  const kick = () => {
    if (running || scheduled) return;
    scheduled = true;
    // At least the next turn: what the other workers settle meanwhile goes in the same statement.
    const wait = buffered >= maxAttempts ? 0 : lastStart + intervalMs - performance.now();
    if (wait <= 0) setImmediate(start);
    else setTimeout(start, wait);
  };

  return {
    forEndpoint(endpointId) {
      const state: EndpointState = {
        id: endpointId,
        buffer: [],
        durable: { position: -1, generation: -1 },
        settled: -1,
        stale: false,
        sinceTrim: 0,
        failure: undefined,
      };
      const touch = () => {
        dirty.add(state);
        kick();
      };
      return {
        get stale() {
          return state.stale;
        },
        attempt(record) {
          state.buffer.push(record);
          buffered++;
          touch();
        },
        settle(seq) {
          if (seq <= state.settled) return;
          state.settled = seq;
          touch();
        },
        async drain() {
          for (;;) {
            if (state.failure !== undefined) {
              const error = state.failure;
              state.failure = undefined;
              throw error;
            }
            if (!owes(state)) return;
            touch();
            await new Promise<void>((resolve) => setImmediate(resolve));
            if (running) await running;
          }
        },
        reset(position) {
          state.durable = position;
          state.settled = position.position;
          state.stale = false;
        },
        close() {
          dirty.delete(state);
        },
      };
    },
  };
};
