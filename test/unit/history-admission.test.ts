/**
 * The admission of history reads (src/api/history-admission.ts): a bound on reads in
 * progress, and a Retry-After that grows with the crowd being refused.
 */
import { describe, expect, it } from "vitest";
import { createHistoryAdmission } from "../../src/api/history-admission.ts";

describe("history admission", () => {
  it("admits up to the bound, refuses beyond it, and admits again once a slot is left", () => {
    const admission = createHistoryAdmission(2, () => 0);
    const a = admission.enter();
    const b = admission.enter();
    expect(a.admitted && b.admitted).toBe(true);
    const refused = admission.enter();
    expect(refused).toMatchObject({ admitted: false, inProgress: 2 });
    if (a.admitted) a.leave();
    if (a.admitted) a.leave(); // leaving twice frees one slot only
    expect(admission.enter().admitted).toBe(true);
    expect(admission.enter().admitted).toBe(false);
  });

  it("tells a large refused crowd to come back later than a small one, within 1 to 30 s", () => {
    let now = 0;
    const admission = createHistoryAdmission(10, () => now);
    const retryAfter = (refusals: number) => {
      let last = 0;
      for (let i = 0; i < refusals; i++) {
        const answer = admission.enter();
        if (!answer.admitted) last = answer.retryAfterSeconds;
      }
      return last;
    };
    // Ten slots held, ten reads served a second for a few seconds.
    const slots = Array.from({ length: 10 }, () => admission.enter());
    for (let s = 0; s < 4; s++) {
      now += 1_000;
      for (const slot of slots.splice(0)) if (slot.admitted) slot.leave();
      for (let i = 0; i < 10; i++) slots.push(admission.enter());
    }
    const few = retryAfter(5);
    expect(few).toBeGreaterThanOrEqual(1);
    now += 1_000;
    const many = retryAfter(2_000);
    expect(many).toBeGreaterThan(few);
    expect(many).toBeLessThanOrEqual(30);
  });
});
