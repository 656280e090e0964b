/**
 * Leadership: only the holder of the leader lock delivers. A process tries
 * the lock at start and, as a standby, every `standbyPollMs`; when it gets
 * the lock it leads (`prepare`, then `begin`); when it loses the lock or
 * stops, it steps down (`stepDown` lets in-flight work finish). Every change
 * bumps `term`: work started in an older term sees `isCurrent(term)` false
 * and stops before its next delivery.
 *
 * Imports domain types only; the lock is a port (src/domain/delivery.ts).
 */
import type { Logger } from "pino";
import type { LeaderLock } from "../domain/delivery.ts";

export type DeliveryRole = "starting" | "leader" | "standby" | "stopped";

export interface LeadershipOptions {
  lock: LeaderLock;
  log: Logger;
  standbyPollMs: number;
  onRole: (role: DeliveryRole) => void;
  /** Got the lock: load what leading needs. The role is still `starting`/`standby`; a throw steps down. */
  prepare: (term: number) => Promise<void>;
  /** Now leading (after `prepare`, in the same term). */
  begin: (term: number) => void;
  /** No longer leading: finish or abandon the work of older terms. */
  stepDown: () => Promise<void>;
}

export interface Leadership {
  readonly role: DeliveryRole;
  readonly term: number;
  isCurrent(term: number): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export const createLeadership = (options: LeadershipOptions): Leadership => {
  const { lock, log } = options;
  let role: DeliveryRole = "starting";
  let term = 0;
  let standbyTimer: NodeJS.Timeout | undefined;

  const setRole = (next: DeliveryRole): void => {
    if (role === next) return;
    role = next;
    options.onRole(next);
  };
  const stepDown = async (): Promise<void> => {
    term++;
    // No longer leading from this moment: nothing new starts while in-flight work finishes.
    if (role === "leader") setRole("standby");
    await options.stepDown();
  };
  const scheduleAttempt = (): void => {
    if (role === "stopped") return;
    clearTimeout(standbyTimer);
    standbyTimer = setTimeout(() => void tryLead(), options.standbyPollMs);
    standbyTimer.unref();
  };
  const tryLead = async (): Promise<void> => {
    if (role === "stopped" || role === "leader") return;
    let acquired = false;
    try {
      acquired = await lock.tryAcquire();
    } catch (error) {
      log.warn({ err: error }, "leader lock attempt failed");
    }
    if (!acquired) {
      setRole("standby");
      scheduleAttempt();
      return;
    }
    try {
      const leading = ++term;
      await options.prepare(leading);
      if (leading !== term) return;
      setRole("leader");
      options.begin(leading);
    } catch (error) {
      log.error({ err: error }, "could not start leading; retrying");
      await stepDown();
      await lock.release().catch(() => undefined);
      scheduleAttempt();
    }
  };

  lock.onLost(() => {
    if (role !== "leader") return;
    log.error("lost the leader lock; standing by");
    void stepDown().then(scheduleAttempt);
  });

  return {
    get role() {
      return role;
    },
    get term() {
      return term;
    },
    isCurrent: (t) => t === term,
    start: tryLead,
    async stop() {
      if (role === "stopped") return;
      clearTimeout(standbyTimer);
      await stepDown();
      setRole("stopped");
      await lock.release().catch((error) => log.warn({ err: error }, "leader lock release failed"));
    },
  };
};
