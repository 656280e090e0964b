/**
 * In-order settlement of one partner's deliveries in flight. The delivery
 * core hands a partner's next batch to its channel while the last is still
 * unaccepted; this queue makes sure that what follows acceptance (moving the
 * position, announcing it) runs in the order the batches were handed over,
 * and never after a failure: from the first failure on, each entry gets
 * `onFailed` instead, and the queue is `halted` at once (not when the failed
 * entry's turn comes) so that nothing new is handed over ahead of it.
 *
 * Imports nothing of ours.
 */

export interface InOrderSettlement {
  /** Entries handed over and not yet settled in order. */
  readonly pending: number;
  /** The sum of the pending entries' costs (messages in flight). */
  readonly pendingCost: number;
  /** An entry failed (or an `onAccepted` threw): hand nothing more over in this run. */
  readonly halted: boolean;
  /**
   * Keeps `accepted` in the queue until it and every entry before it settled; then runs
   * `onAccepted`, or `onFailed` if it or an entry before it failed.
   */
  add(accepted: Promise<void>, cost: number, onAccepted?: () => void, onFailed?: () => void): void;
  /** Resolves when an entry settles or `wake` is called. */
  nextChange(): Promise<void>;
  /** Resolves the pending `nextChange` (new work arrived). */
  wake(): void;
  /** Waits until every entry settled; throws the first failure among them. */
  allSettled(): Promise<void>;
  /** A new run: forgets the last run's failure. Call only when nothing is pending. */
  reset(): void;
}

interface Entry {
  cost: number;
  settled: boolean;
  error: Error | undefined;
  onAccepted: (() => void) | undefined;
  onFailed: (() => void) | undefined;
}

const asError = (thrown: unknown): Error => (thrown instanceof Error ? thrown : new Error(String(thrown)));

export const createInOrderSettlement = (): InOrderSettlement => {
  const queue: Entry[] = [];
  let pendingCost = 0;
  let firstError: Error | undefined;
  let halted = false;
  let waiter: (() => void) | undefined;

  const wake = (): void => {
    const resolve = waiter;
    waiter = undefined;
    resolve?.();
  };
  const settle = (entry: Entry, error: Error | undefined): void => {
    entry.settled = true;
    entry.error = error;
    while (queue.length > 0 && queue[0]!.settled) {
      const first = queue.shift()!;
      pendingCost -= first.cost;
      firstError ??= first.error;
      if (firstError !== undefined) {
        first.onFailed?.();
        continue;
      }
      try {
        // It may add more (the announced positions): they join the end of the queue.
        first.onAccepted?.();
      } catch (thrown) {
        firstError = asError(thrown);
        halted = true;
      }
    }
    wake();
  };
  const nextChange = (): Promise<void> =>
    new Promise<void>((resolve) => {
      waiter = resolve;
    });

  return {
    get pending() {
      return queue.length;
    },
    get pendingCost() {
      return pendingCost;
    },
    get halted() {
      return halted;
    },
    add(accepted, cost, onAccepted, onFailed) {
      const entry: Entry = { cost, settled: false, error: undefined, onAccepted, onFailed };
      queue.push(entry);
      pendingCost += cost;
      accepted.then(
        () => settle(entry, undefined),
        (error: unknown) => {
          halted = true;
          settle(entry, asError(error));
        },
      );
    },
    nextChange,
    wake,
    async allSettled() {
      while (queue.length > 0) await nextChange();
      if (firstError !== undefined) throw firstError;
    },
    reset() {
      firstError = undefined;
      halted = false;
    },
  };
};
