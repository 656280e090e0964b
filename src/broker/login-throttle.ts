/**
 * Failed MQTT logins per source address AND username: after `limit` failures
 * within `windowMs`, that pair's new connections are refused until the
 * window has passed. Keyed by the pair so a guesser slows itself down, not
 * its neighbours: behind a TCP load balancer every client shares one
 * address, and another credential's valid login from it still goes through.
 * Fixed windows; memory bounded by `maxEntries` (the oldest entry goes first).
 */
export const createLoginThrottle = (limit: number, windowMs: number, maxEntries = 100_000) => {
  const failures = new Map<string, { count: number; since: number }>();
  const keyOf = (address: string, username: string | undefined) => `${address}\u0000${username ?? ""}`;
  const current = (key: string, now: number) => {
    const entry = failures.get(key);
    if (entry && now - entry.since < windowMs) return entry;
    if (entry) failures.delete(key);
    return undefined;
  };
  return {
    fail(address: string, username: string | undefined, now = Date.now()): void {
      const key = keyOf(address, username);
      const entry = current(key, now);
      if (entry) {
        entry.count++;
        return;
      }
      if (failures.size >= maxEntries) failures.delete(failures.keys().next().value as string);
      failures.set(key, { count: 1, since: now });
    },
    blocked(address: string, username: string | undefined, now = Date.now()): boolean {
      const entry = current(keyOf(address, username), now);
      return entry !== undefined && entry.count >= limit;
    },
  };
};
