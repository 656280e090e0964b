/**
 * The admission of history reads (src/api/history-admission.ts): a bound on reads in
 * progress, a bounded wait for a place, and a Retry-After that grows with the crowd refused.
 */
import { describe, expect, it } from "vitest";
import { type Admission, createHistoryAdmission } from "../../src/api/history-admission.ts";

const leave = (admission: Admission) => {
  if (admission.admitted) admission.leave();
};

describe("history admission", () => {
  it("admits up to the bound, refuses beyond it at once with no wait, and admits again once a place is left", async () => {
    const admission = createHistoryAdmission(2, 0, () => 0);
    const a = await admission.enter();
    const b = await admission.enter();
    expect(a.admitted && b.admitted).toBe(true);
    expect(await admission.enter()).toMatchObject({ admitted: false, inProgress: 2 });
    leave(a);
    leave(a); // leaving twice frees one place only
    expect((await admission.enter()).admitted).toBe(true);
    expect((await admission.enter()).admitted).toBe(false);
  });

  it("lets a read beyond the bound wait, and gives it the first place left, in arrival order", async () => {
    const admission = createHistoryAdmission(1, 60_000);
    const first = await admission.enter();
    const order: string[] = [];
    const inOrder = (name: string) => (answer: Admission) => {
      order.push(name);
      return answer;
    };
    const second = admission.enter().then(inOrder("second"));
    const third = admission.enter().then(inOrder("third"));
    leave(first);
    const secondIn = await second;
    expect(secondIn.admitted).toBe(true);
    expect(order).toEqual(["second"]);
    leave(secondIn);
    expect((await third).admitted).toBe(true);
    expect(order).toEqual(["second", "third"]);
  });

  it("refuses a read whose wait is over, with a Retry-After, and forgets it", async () => {
    const admission = createHistoryAdmission(1, 20);
    const held = await admission.enter();
    const waited = await admission.enter();
    expect(waited).toMatchObject({ admitted: false, inProgress: 1 });
    if (!waited.admitted) expect(waited.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    // The refused one holds no place in the queue: the next place goes to whoever asks next.
    leave(held);
    expect((await admission.enter()).admitted).toBe(true);
  });

  it("tells a large refused crowd to come back later than a small one, within 1 to 30 s", async () => {
    let now = 0;
    const admission = createHistoryAdmission(10, 0, () => now);
    const retryAfter = async (refusals: number) => {
      let last = 0;
      for (let i = 0; i < refusals; i++) {
        const answer = await admission.enter();
        if (!answer.admitted) last = answer.retryAfterSeconds;
      }
      return last;
    };
    // Ten places held, ten reads served a second for a few seconds.
    const slots = await Promise.all(Array.from({ length: 10 }, () => admission.enter()));
    for (let s = 0; s < 4; s++) {
      now += 1_000;
      for (const slot of slots.splice(0)) leave(slot);
      for (let i = 0; i < 10; i++) slots.push(await admission.enter());
    }
    const few = await retryAfter(5);
    expect(few).toBeGreaterThanOrEqual(1);
    now += 1_000;
    const many = await retryAfter(2_000);
    expect(many).toBeGreaterThan(few);
    expect(many).toBeLessThanOrEqual(30);
  });
});
