/**
 * Deadlines for deliveries in flight: fails a promise that has not settled
 * within `ms`, all from one interval timer (running only while something is
 * watched). A timer of its own for every batch, with the race around it, cost
 * more than a batch of one event's own bookkeeping. A promise fails between
 * `ms` and `ms` plus a tick late.
 *
 * Imports nothing of ours.
 */

export interface Deadlines {
  /** `promise`, or `timeoutError()` once `ms` passed without it settling. */
  watch<T>(promise: Promise<T>, timeoutError: () => Error): Promise<T>;
  /** Promises watched now (for tests). */
  readonly watched: number;
}

export const createDeadlines = (ms: number, tickMs = Math.max(10, Math.min(1_000, ms / 4))): Deadlines => {
  const watched = new Set<{ due: number; fail: () => void }>();
  let timer: NodeJS.Timeout | undefined;
  const expire = (): void => {
    const now = Date.now();
    for (const entry of watched) {
      if (entry.due > now) continue;
      watched.delete(entry);
      entry.fail();
    }
    if (watched.size === 0) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  return {
    get watched() {
      return watched.size;
    },
    watch<T>(promise: Promise<T>, timeoutError: () => Error): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const entry = { due: Date.now() + ms, fail: () => reject(timeoutError()) };
        watched.add(entry);
        timer ??= setInterval(expire, tickMs).unref();
        promise.then(
          (value) => {
            watched.delete(entry);
            resolve(value);
          },
          (error: unknown) => {
            watched.delete(entry);
            reject(error);
          },
        );
      });
    },
  };
};
