/**
 * Admission of GET /v1/events reads in a storm: at most `max` in progress at once; the next waits
 * its turn in a queue for at most `maxWaitMs`, and is refused (429) when its wait is over rather
 * than left waiting for a database connection until requests time out as 500s. A short wait in
 * the server keeps it busy: a refusal's Retry-After comes in whole seconds, and a storm paced by
 * them left the server idle between its waves (bench/README.md, "Reconnect storm").
 *
 * The refusal says when to come back (Retry-After): about how long the server needs to serve
 * everyone who is waiting or being refused, from the refusals and the reads served over the last
 * seconds. A fixed "1 second" brought 2,000 refused consumers back every second and the server
 * spent its time refusing them.
 *
 * Imports nothing of ours.
 */

export type Admission =
  | { admitted: true; leave(): void }
  | { admitted: false; retryAfterSeconds: number; inProgress: number };

export interface HistoryAdmission {
  /** A slot, to be left when the read is done; or, once the wait is over, the seconds to wait. */
  enter(): Promise<Admission>;
}

const MAX_RETRY_AFTER_SECONDS = 30;

export const createHistoryAdmission = (
  max: number,
  maxWaitMs: number,
  now: () => number = Date.now,
): HistoryAdmission => {
  let inProgress = 0;
  const waiting: Array<{ admit(): void }> = [];
  // Per-second counts of the current second, and moving averages of the seconds before it.
  let second = Math.floor(now() / 1000);
  let served = 0;
  let refused = 0;
  let servedPerSecond = 0;
  let refusedPerSecond = 0;
  const roll = () => {
    const current = Math.floor(now() / 1000);
    if (current === second) return;
    // Seconds with no traffic count as zeros.
    for (let s = second; s < current && s < second + 10; s++) {
      servedPerSecond = servedPerSecond / 2 + served / 2;
      refusedPerSecond = refusedPerSecond / 2 + refused / 2;
      served = 0;
      refused = 0;
    }
    second = current;
  };
  const slot = (): Admission => {
    inProgress++;
    let left = false;
    return {
      admitted: true,
      leave() {
        if (left) return;
        left = true;
        inProgress--;
        roll();
        served++;
        // The slot goes to the longest waiting, if any.
        waiting.shift()?.admit();
      },
    };
  };
  const refusal = (): Admission => {
    roll();
    refused++;
    const crowd = Math.max(refused, refusedPerSecond) + waiting.length + inProgress;
    const rate = Math.max(1, servedPerSecond, served);
    const retryAfterSeconds = Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(crowd / rate)));
    return { admitted: false, retryAfterSeconds, inProgress };
  };
  return {
    enter() {
      roll();
      if (inProgress < max && waiting.length === 0) return Promise.resolve(slot());
      if (maxWaitMs <= 0) return Promise.resolve(refusal());
      return new Promise<Admission>((resolve) => {
        const waiter = {
          admit() {
            clearTimeout(timer);
            resolve(slot());
          },
        };
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(waiter), 1);
          resolve(refusal());
        }, maxWaitMs);
        waiting.push(waiter);
      });
    },
  };
};
