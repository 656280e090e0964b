/**
 * Who is waiting for a partner's next event: the open event streams. Told
 * of this process's own commits at once, and of every event the bridge
 * leading here publishes (commits made by other processes); a stream that
 * hears neither reads the log again at its heartbeat.
 *
 * May import: nothing of ours.
 */
export interface CommitWakeups {
  subscribe(partnerId: string, wake: () => void): () => void;
  /** An event of this partner was committed or published. */
  committed(partnerId: string): void;
}

export const createCommitWakeups = (): CommitWakeups => {
  const waiting = new Map<string, Set<() => void>>();
  return {
    subscribe(partnerId, wake) {
      const wakes = waiting.get(partnerId) ?? new Set<() => void>();
      waiting.set(partnerId, wakes);
      wakes.add(wake);
      return () => {
        wakes.delete(wake);
        if (wakes.size === 0 && waiting.get(partnerId) === wakes) waiting.delete(partnerId);
      };
    },
    committed(partnerId) {
      const wakes = waiting.get(partnerId);
      if (wakes) for (const wake of wakes) wake();
    },
  };
};
