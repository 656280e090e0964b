/**
 * One endpoint's database writes, behind its requests: the attempts'
 * records and the position's compare and set, grouped.
 *
 * Why: written one by one (a transaction for each attempt and another for
 * each position) they cost several times the POST itself, and the worker
 * waited for them. Here the worker only hands them over:
 * - `attempt()` buffers an attempt's record;
 * - `settle(seq)` says every event up to `seq` was answered 2xx or passed over;
 * and a flush writes whatever is buffered, at most `maxAttempts` records and
 * the highest settled seq, in ONE statement (store.recordDeliveries). A flush
 * starts at once when none is running, else right after the running one: the
 * longer the database takes, the more each flush carries (group commit).
 *
 * Guarantees: the position never passes an event that was not settled, and
 * the records of the attempts it covers are in the same statement or an
 * earlier one. A crash loses at most the buffer: the position stays behind,
 * so those events are sent again (at least once), never skipped. A failed
 * compare and set (a replay moved the position) makes the writes `stale`:
 * the worker drains them, re-reads the position and goes on from there.
 *
 * The bounded history is trimmed every `trimEvery` records, not per record.
 */
import type { Logger } from "pino";
import type { AttemptInput, WebhookPosition, WebhookStore } from "../domain/webhooks.ts";

export interface DeliveryWritesOptions {
  store: Pick<WebhookStore, "recordDeliveries" | "trimAttempts">;
  endpointId: string;
  log: Logger;
  /** Records per statement (default 200). */
  maxAttempts?: number;
  /** Trim the history after this many records (default 100). */
  trimEvery?: number;
}

export interface DeliveryWrites {
  /** A replay moved the position under us: drain, re-read it, `reset`. */
  readonly stale: boolean;
  /** The position as last committed (or read). */
  readonly durable: WebhookPosition;
  attempt(record: AttemptInput): void;
  settle(seq: number): void;
  /** Writes everything handed over so far; throws the last write error, if any. */
  drain(): Promise<void>;
  /** After a re-read of the position (call only once drained). */
  reset(position: WebhookPosition): void;
}

export const createDeliveryWrites = (options: DeliveryWritesOptions): DeliveryWrites => {
  const { store, endpointId, log } = options;
  const maxAttempts = options.maxAttempts ?? 200;
  const trimEvery = options.trimEvery ?? 100;
  let buffer: AttemptInput[] = [];
  let durable: WebhookPosition = { position: -1, generation: -1 };
  let settled = -1;
  let stale = false;
  let sinceTrim = 0;
  let failure: unknown;
  let running: Promise<void> | undefined;

  const positionOwed = () => !stale && settled > durable.position;
  const owed = () => buffer.length > 0 || positionOwed();

  const flushOnce = async () => {
    const records = buffer.length > maxAttempts ? buffer.splice(0, maxAttempts) : buffer;
    if (records === buffer) buffer = [];
    // The position may only cover attempts written in this statement or before: when records stay
    // buffered (more than maxAttempts), the position waits for the next flush.
    const next = settled;
    const move = positionOwed() && buffer.length === 0 ? { expected: durable, next } : undefined;
    const moved = await store.recordDeliveries(endpointId, records, move);
    if (move) {
      if (moved) durable = { position: next, generation: durable.generation };
      else stale = true;
    }
    sinceTrim += records.length;
    if (sinceTrim >= trimEvery) {
      sinceTrim = 0;
      await store.trimAttempts([endpointId]);
    }
  };

  const kick = () => {
    if (running) return;
    running = (async () => {
      try {
        while (owed()) await flushOnce();
        failure = undefined;
      } catch (error) {
        // The position stays where it was (events sent again, never skipped); the records of
        // this flush are lost (the history is a diagnostic, not the truth).
        failure = error;
        log.warn({ err: error, endpoint: endpointId }, "could not record webhook attempts or position");
      }
    })().finally(() => {
      running = undefined;
    });
  };

  return {
    get stale() {
      return stale;
    },
    get durable() {
      return durable;
    },
    attempt(record) {
      buffer.push(record);
      kick();
    },
    settle(seq) {
      if (seq <= settled) return;
      settled = seq;
      kick();
    },
    async drain() {
      for (;;) {
        if (running) await running;
        if (failure !== undefined) {
          const error = failure;
          failure = undefined;
          throw error;
        }
        if (!owed()) return;
        kick();
      }
    },
    reset(position) {
      durable = position;
      settled = position.position;
      stale = false;
    },
  };
};
