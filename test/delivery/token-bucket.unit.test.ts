/** The throttled partner's token bucket, on a clock the test moves. No services. */
import { describe, expect, it } from "vitest";
import { createTokenBucket } from "../../src/delivery/token-bucket.ts";

const clock = () => {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
};

describe("token bucket", () => {
  it("starts with one second of burst and grants no more than it holds", () => {
    const time = clock();
    const bucket = createTokenBucket(20, time.now);
    expect(bucket.take(500)).toBe(20);
    expect(bucket.take(1)).toBe(0);
    expect(bucket.msPerToken).toBe(50);
  });

  it("refills at the rate, never past one second's worth", () => {
    const time = clock();
    const bucket = createTokenBucket(20, time.now);
    bucket.take(20);
    time.advance(49);
    expect(bucket.take(5)).toBe(0);
    time.advance(1);
    expect(bucket.take(5)).toBe(1);
    time.advance(60_000);
    expect(bucket.take(500)).toBe(20);
  });

  it("takes back unused tokens and refills at once when the partner changes state", () => {
    const time = clock();
    const bucket = createTokenBucket(10, time.now);
    expect(bucket.take(10)).toBe(10);
    bucket.giveBack(3);
    expect(bucket.take(10)).toBe(3);
    bucket.refill();
    expect(bucket.take(10)).toBe(10);
  });
});
