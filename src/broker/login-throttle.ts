/**
 * Failed MQTT logins per source address: after `limit` failures within
 * `windowMs`, new connections from that address are refused until the
 * window has passed. Fixed windows, bounded memory.
 */
export const createLoginThrottle = (limit: number, windowMs: number, maxEntries = 100_000) => {
  const failures = new Map<string, { count: number; since: number }>();
  const current = (address: string, now: number) => {
    const entry = failures.get(address);
    if (entry && now - entry.since < windowMs) return entry;
    if (entry) failures.delete(address);
    return undefined;
  };
  return {
    fail(address: string, now = Date.now()): void {
      const entry = current(address, now);
      if (entry) entry.count++;
      else {
        if (failures.size >= maxEntries) failures.clear();
        failures.set(address, { count: 1, since: now });
      }
    },
    blocked(address: string, now = Date.now()): boolean {
      const entry = current(address, now);
      return entry !== undefined && entry.count >= limit;
    },
  };
};
