/**
 * The webhook delivery's pure parts: the full-jitter retry schedule, the
 * ladder (active → throttled → poll_only → disabled) and the endpoint filter.
 */
import { describe, expect, it } from "vitest";
import type { OrderEvent } from "../../src/domain/events.ts";
import { afterFailure, matchesFilter, retryDelayMs } from "../../src/webhooks/retry-policy.ts";

const retry = { initialMs: 1_000, maxMs: 3_600_000, giveUpMs: 3 * 86_400_000 };

describe("webhook retry schedule", () => {
  it("doubles its ceiling from the initial delay up to the maximum, with full jitter", () => {
    expect(retryDelayMs(1, retry, () => 0.999_999)).toBe(999);
    expect(retryDelayMs(2, retry, () => 0.999_999)).toBe(1_999);
    expect(retryDelayMs(13, retry, () => 0.999_999)).toBe(3_599_996);
    expect(retryDelayMs(500, retry, () => 0.5)).toBe(1_800_000);
    expect(retryDelayMs(3, retry, () => 0)).toBe(0);
  });

  it("gives up after about 150 attempts over three days (the mean delay at the 1 h ceiling is 30 min)", () => {
    let total = 0;
    let attempts = 0;
    while (total < retry.giveUpMs) total += retryDelayMs(++attempts, retry, () => 0.5);
    expect(attempts).toBeGreaterThan(140);
    expect(attempts).toBeLessThan(160);
  });
});

describe("webhook ladder", () => {
  const policy = { retry, throttleAfter: 5, pollOnlyAfterMs: 6 * 3_600_000, probeIntervalMs: 3_600_000 };
  const failure = (failures: number, failingForMs: number, httpStatus: number | null = 500) => ({
    httpStatus,
    failures,
    failingForMs,
    last: "500",
  });
  const half = () => 0.5;

  it("retries an active endpoint, throttles it after 5 failures, keeps it throttled", () => {
    expect(afterFailure("active", failure(4, 10_000), policy, half)).toMatchObject({
      action: "retry",
      status: "active",
      delayMs: 4_000,
    });
    expect(afterFailure("active", failure(5, 20_000), policy, half)).toMatchObject({
      action: "retry",
      status: "throttled",
      reason: expect.stringMatching(/5 consecutive failed deliveries/),
    });
    expect(afterFailure("throttled", failure(9, 3_600_000), policy, half)).toMatchObject({
      status: "throttled",
      reason: "",
    });
  });

  it("turns an endpoint failing the same event for 6 h to poll_only: one probe an hour", () => {
    const step = afterFailure("throttled", failure(20, 6 * 3_600_000), policy, half);
    expect(step).toMatchObject({ action: "retry", status: "poll_only", delayMs: 3_600_000 });
    expect(afterFailure("poll_only", failure(21, 7 * 3_600_000), policy, half)).toMatchObject({
      status: "poll_only",
      delayMs: 3_600_000,
      reason: "",
    });
    // A worker started on a poll_only endpoint (a restart) keeps it there, probing.
    expect(afterFailure("poll_only", failure(1, 0), policy, half)).toMatchObject({
      status: "poll_only",
      delayMs: 3_600_000,
    });
  });

  it("disables after failing the same event for giveUpMs, or at once on 410 Gone", () => {
    expect(afterFailure("poll_only", failure(80, retry.giveUpMs), policy, half)).toMatchObject({
      action: "disable",
      reason: expect.stringMatching(/^gave up/),
    });
    expect(afterFailure("active", failure(1, 0, 410), policy, half)).toEqual({
      action: "disable",
      reason: "the receiver answered 410 Gone",
    });
  });
});

describe("webhook endpoint filter", () => {
  const event = { shop_id: "north", type: "order.created" } as OrderEvent;
  it("matches every event without a filter, else by shop and type", () => {
    expect(matchesFilter({ shopId: null, types: [] }, event)).toBe(true);
    expect(matchesFilter({ shopId: "north", types: ["order.created"] }, event)).toBe(true);
    expect(matchesFilter({ shopId: "south", types: [] }, event)).toBe(false);
    expect(matchesFilter({ shopId: null, types: ["order.status_changed"] }, event)).toBe(false);
  });
});
