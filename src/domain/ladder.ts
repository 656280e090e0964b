/**
 * The degradation ladder: a partner that falls behind is moved down before
 * it hurts the others, and back up once healthy for a while. Pure: the
 * monitor feeds observations, this decides.
 *
 *   normal → throttled → poll_only      (automatic, on lag or slow delivery)
 *   any → suspended                     (operator only: the kill switch)
 */
import type { PartnerState } from "./partners.ts";

export interface LadderPolicy {
  /** Lag (seconds behind the log, or events) at which a partner is throttled. */
  throttleLagSeconds: number;
  throttleLagEvents: number;
  /** Lag at which a throttled partner stops being pushed to. */
  pollOnlyLagSeconds: number;
  pollOnlyLagEvents: number;
  /** How long a partner must stay healthy before it moves one step back up. */
  recoverAfterSeconds: number;
}

export const DEFAULT_LADDER_POLICY: LadderPolicy = {
  throttleLagSeconds: 10,
  throttleLagEvents: 1_000,
  pollOnlyLagSeconds: 60,
  pollOnlyLagEvents: 10_000,
  recoverAfterSeconds: 60,
};

/**
 * A partner's delivery as the log sees it: its head, what the broker accepted,
 * and how far behind that is. The store reads it; the monitor, /metrics and the
 * admin health route use it.
 */
export interface DeliveryStatus {
  partnerId: string;
  state: PartnerState;
  pinned: boolean;
  headSeq: number;
  publishedSeq: number;
  /** Events committed but not yet accepted by the broker. */
  lagEvents: number;
  /** Age of the oldest event not yet accepted by the broker (0 when none). */
  lagSeconds: number;
}

/** What the ladder decides from: a partner's delivery status and how long it has been healthy. */
export interface PartnerObservation
  extends Pick<DeliveryStatus, "state" | "pinned" | "lagEvents" | "lagSeconds"> {
  /** How long the partner has been healthy (below the throttle thresholds), in seconds. */
  healthyForSeconds: number;
}

export interface LadderDecision {
  to: PartnerState;
  reason: string;
}

const over = (o: PartnerObservation, seconds: number, events: number): boolean =>
  o.lagSeconds >= seconds || o.lagEvents >= events;

export const isHealthy = (
  o: Pick<PartnerObservation, "lagEvents" | "lagSeconds">,
  policy: LadderPolicy,
): boolean => o.lagSeconds < policy.throttleLagSeconds && o.lagEvents < policy.throttleLagEvents;

/** The next state, or undefined to stay. Pinned and suspended partners are never moved automatically. */
export const decideLadderStep = (o: PartnerObservation, policy: LadderPolicy): LadderDecision | undefined => {
  if (o.pinned || o.state === "suspended") return undefined;
  const lag = `lag ${o.lagEvents} events, ${o.lagSeconds.toFixed(1)} s`;
  if (o.state === "normal" && over(o, policy.throttleLagSeconds, policy.throttleLagEvents)) {
    return {
      to: "throttled",
      reason: `${lag} (throttle at ${policy.throttleLagSeconds} s or ${policy.throttleLagEvents} events)`,
    };
  }
  if (o.state === "throttled" && over(o, policy.pollOnlyLagSeconds, policy.pollOnlyLagEvents)) {
    return {
      to: "poll_only",
      reason: `${lag} (poll only at ${policy.pollOnlyLagSeconds} s or ${policy.pollOnlyLagEvents} events)`,
    };
  }
  if (
    (o.state === "throttled" || o.state === "poll_only") &&
    o.healthyForSeconds >= policy.recoverAfterSeconds
  ) {
    return {
      to: o.state === "poll_only" ? "throttled" : "normal",
      reason: `healthy for ${Math.round(o.healthyForSeconds)} s (${lag})`,
    };
  }
  return undefined;
};
