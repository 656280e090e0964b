/**
 * The webhook delivery's pure parts: the full-jitter retry schedule and the
 * endpoint filter.
 */
import { describe, expect, it } from "vitest";
import type { OrderEvent } from "../../src/domain/events.ts";
import { matchesFilter, retryDelayMs } from "../../src/webhooks/delivery.ts";

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

describe("webhook endpoint filter", () => {
  const event = { shop_id: "north", type: "order.created" } as OrderEvent;
  it("matches every event without a filter, else by shop and type", () => {
    expect(matchesFilter({ shopId: null, types: [] }, event)).toBe(true);
    expect(matchesFilter({ shopId: "north", types: ["order.created"] }, event)).toBe(true);
    expect(matchesFilter({ shopId: "south", types: [] }, event)).toBe(false);
    expect(matchesFilter({ shopId: null, types: ["order.status_changed"] }, event)).toBe(false);
  });
});
