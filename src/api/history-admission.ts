/**
 * Admission of GET /v1/events reads in a storm: at most `max` in progress at once; the next is
 * refused at once (429) rather than queued for a database connection, where it would wait
 * until requests time out as 500s. The refusal says when to come back (Retry-After): about how
 * long the server needs to serve everyone who is being refused, from the refusals and the
 * reads served over the last seconds. A fixed "1 second" brought 2,000 refused consumers back
 * every second and the server spent its time refusing them.
 *
 * Imports nothing of ours.
 */

export interface HistoryAdmission {
  /** A slot, to be left when the read is done; or the seconds to wait. */
  enter():
    | { admitted: true; leave(): void }
    | { admitted: false; retryAfterSeconds: number; inProgress: number };
}

const MAX_RETRY_AFTER_SECONDS = 30;

export const createHistoryAdmission = (max: number, now: () => number = Date.now): HistoryAdmission => {
  let inProgress = 0;
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
  return {
    enter() {
      roll();
      if (inProgress >= max) {
        refused++;
        const waiting = Math.max(refused, refusedPerSecond) + inProgress;
        const rate = Math.max(1, servedPerSecond, served);
        const retryAfterSeconds = Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(waiting / rate)));
        return { admitted: false, retryAfterSeconds, inProgress };
      }
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
        },
      };
    },
  };
};
