/**
 * The partner monitor: every few seconds, reads each partner's delivery lag
 * and moves it on the degradation ladder (normal → throttled → poll_only and
 * back up once healthy for a while). Runs beside the bridge and acts only
 * while this process leads, so one monitor decides at a time.
 */
import type { Logger } from "pino";
import {
  DEFAULT_LADDER_POLICY,
  type DeliveryStatus,
  decideLadderStep,
  isHealthy,
  type LadderPolicy,
} from "../domain/ladder.ts";
import type { PartnerState } from "../domain/partners.ts";

export interface PartnerMonitorDeps {
  log: Logger;
  readStatus(): Promise<DeliveryStatus[]>;
  stepLadder(partnerId: string, from: PartnerState, to: PartnerState, reason: string): Promise<boolean>;
  /** True while this process's bridge leads. */
  isLeader(): boolean;
  onTransition?(transition: {
    partnerId: string;
    from: PartnerState;
    to: PartnerState;
    reason: string;
  }): void;
  policy?: Partial<LadderPolicy>;
  intervalMs?: number;
}

export interface PartnerMonitor {
  /** One evaluation of every partner (the timer calls it; tests may too). */
  evaluate(): Promise<void>;
  stop(): void;
}

export const startPartnerMonitor = (deps: PartnerMonitorDeps): PartnerMonitor => {
  const policy: LadderPolicy = { ...DEFAULT_LADDER_POLICY, ...deps.policy };
  const healthySince = new Map<string, number>();
  let running: Promise<void> | undefined;

  const evaluateOnce = async (): Promise<void> => {
    if (!deps.isLeader()) {
      healthySince.clear();
      return;
    }
    const now = Date.now();
    for (const status of await deps.readStatus()) {
      if (isHealthy(status, policy)) {
        if (!healthySince.has(status.partnerId)) healthySince.set(status.partnerId, now);
      } else {
        healthySince.delete(status.partnerId);
      }
      const since = healthySince.get(status.partnerId);
      const decision = decideLadderStep(
        { ...status, healthyForSeconds: since === undefined ? 0 : (now - since) / 1_000 },
        policy,
      );
      if (!decision) continue;
      const moved = await deps.stepLadder(status.partnerId, status.state, decision.to, decision.reason);
      if (!moved) continue;
      // A step up must earn its next step from scratch.
      healthySince.delete(status.partnerId);
      const transition = {
        partnerId: status.partnerId,
        from: status.state,
        to: decision.to,
        reason: decision.reason,
      };
      deps.log.warn(transition, "partner moved on the degradation ladder");
      deps.onTransition?.(transition);
    }
  };

  const evaluate = async (): Promise<void> => {
    // One evaluation at a time: a slow database must not stack them up.
    running ??= evaluateOnce()
      .catch((error) => deps.log.warn({ err: error }, "partner monitor evaluation failed"))
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  const timer = setInterval(() => void evaluate(), deps.intervalMs ?? 5_000);
  timer.unref();
  return { evaluate, stop: () => clearInterval(timer) };
};
