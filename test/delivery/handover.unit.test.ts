/** The handover: kept events only save a read, never skip one. No services. */
import { describe, expect, it } from "vitest";
import { createHandover } from "../../src/delivery/handover.ts";
import type { OrderEvent } from "../../src/domain/events.ts";

const eventOf = (partnerId: string, seq: number): OrderEvent =>
  ({ partner_id: partnerId, seq }) as OrderEvent;

describe("handover", () => {
  it("gives back only events that continue the position without a gap", () => {
    const handover = createHandover(100, 1_000);
    for (const seq of [3, 4, 6]) handover.keep(eventOf("p", seq), 2);
    expect(handover.take("p", 2, 10).map((event) => event.seq)).toEqual([3, 4]);
    // 5 is missing: 6 waits (the caller reads 5 from the log).
    expect(handover.take("p", 4, 10)).toEqual([]);
    expect(handover.take("p", 5, 10).map((event) => event.seq)).toEqual([6]);
    expect(handover.held("p")).toBe(0);
  });

  it("keeps nothing already delivered or already kept, and drops what a take passed", () => {
    const handover = createHandover(100, 1_000);
    handover.keep(eventOf("p", 1), 1);
    handover.keep(eventOf("p", 2), 1);
    handover.keep(eventOf("p", 2), 1);
    handover.keep(eventOf("p", 3), 1);
    expect(handover.held("p")).toBe(2);
    expect(handover.take("p", 2, 1).map((event) => event.seq)).toEqual([3]);
    expect(handover.held("p")).toBe(0);
  });

  it("is bounded per partner and in all", () => {
    const handover = createHandover(2, 3);
    for (const seq of [1, 2, 3]) handover.keep(eventOf("a", seq), 0);
    expect(handover.held("a")).toBe(2);
    for (const seq of [1, 2]) handover.keep(eventOf("b", seq), 0);
    expect(handover.held("b")).toBe(1);
    handover.take("a", 0, 10);
    handover.keep(eventOf("b", 2), 0);
    expect(handover.held("b")).toBe(2);
    handover.clear();
    expect(handover.held("b")).toBe(0);
  });
});
