/**
 * A token bucket: `ratePerSecond` tokens a second, with one second of burst.
 * The delivery core takes a throttled partner's events from it (the ladder's
 * `throttled` rate); a partner at any other state does not use it.
 *
 * Imports nothing of ours.
 */

export interface TokenBucket {
  /** Takes up to `wanted` tokens; returns how many were granted now (maybe 0). */
  take(wanted: number): number;
  /** Returns tokens that were taken and not used. */
  giveBack(count: number): void;
  /** Full again, from now (the partner changed state). */
  refill(): void;
  /** How long until the next token, when `take` granted none. */
  readonly msPerToken: number;
}

export const createTokenBucket = (ratePerSecond: number, now: () => number = Date.now): TokenBucket => {
  let tokens = ratePerSecond;
  let refilledAt = now();
  return {
    msPerToken: Math.ceil(1_000 / ratePerSecond),
    take(wanted) {
      const at = now();
      tokens = Math.min(ratePerSecond, tokens + ((at - refilledAt) / 1_000) * ratePerSecond);
      refilledAt = at;
      const granted = Math.min(wanted, Math.floor(tokens));
      tokens -= granted;
      return granted;
    },
    giveBack(count) {
      tokens += count;
    },
    refill() {
      tokens = ratePerSecond;
      refilledAt = now();
    },
  };
};
