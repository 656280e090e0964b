/** In-order settlement: acceptance runs in hand-over order and never after a failure. No services. */
import { describe, expect, it } from "vitest";
import { createInOrderSettlement } from "../../src/delivery/in-order-settlement.ts";

const deferred = () => {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

describe("in-order settlement", () => {
  it("runs onAccepted in the order entries were added, whatever order they settle in", async () => {
    const queue = createInOrderSettlement();
    const order: string[] = [];
    const [a, b, c] = [deferred(), deferred(), deferred()];
    queue.add(a.promise, 2, () => order.push("a"));
    queue.add(b.promise, 3, () => order.push("b"));
    queue.add(c.promise, 1, () => order.push("c"));
    expect(queue.pendingCost).toBe(6);
    c.resolve();
    b.resolve();
    await queue.nextChange();
    expect(order).toEqual([]);
    expect(queue.pending).toBe(3);
    a.resolve();
    await queue.allSettled();
    expect(order).toEqual(["a", "b", "c"]);
    expect(queue.pendingCost).toBe(0);
  });

  it("halts at once on a failure, and gives it and every later entry onFailed, not onAccepted", async () => {
    const queue = createInOrderSettlement();
    const calls: string[] = [];
    const [a, b, c] = [deferred(), deferred(), deferred()];
    queue.add(
      a.promise,
      1,
      () => calls.push("a ok"),
      () => calls.push("a failed"),
    );
    queue.add(
      b.promise,
      1,
      () => calls.push("b ok"),
      () => calls.push("b failed"),
    );
    queue.add(
      c.promise,
      1,
      () => calls.push("c ok"),
      () => calls.push("c failed"),
    );
    b.reject(new Error("broker said no"));
    await queue.nextChange();
    // Halted before b's turn: nothing new may be handed over ahead of b's events.
    expect(queue.halted).toBe(true);
    expect(calls).toEqual([]);
    c.resolve();
    a.resolve();
    await expect(queue.allSettled()).rejects.toThrow("broker said no");
    expect(calls).toEqual(["a ok", "b failed", "c failed"]);
  });

  it("treats a throwing onAccepted as a failure of what follows; reset starts a clean run", async () => {
    const queue = createInOrderSettlement();
    const calls: string[] = [];
    queue.add(Promise.resolve(), 1, () => {
      throw new Error("listener threw");
    });
    queue.add(
      Promise.resolve(),
      1,
      () => calls.push("later ok"),
      () => calls.push("later failed"),
    );
    await expect(queue.allSettled()).rejects.toThrow("listener threw");
    expect(queue.halted).toBe(true);
    expect(calls).toEqual(["later failed"]);
    queue.reset();
    expect(queue.halted).toBe(false);
    queue.add(Promise.resolve(), 1, () => calls.push("next run ok"));
    await queue.allSettled();
    expect(calls).toEqual(["later failed", "next run ok"]);
  });

  it("lets an onAccepted add more, which settles after it", async () => {
    const queue = createInOrderSettlement();
    const calls: string[] = [];
    queue.add(Promise.resolve(), 1, () => {
      calls.push("batch");
      queue.add(Promise.resolve(), 2, () => calls.push("cursors"));
    });
    await queue.allSettled();
    expect(calls).toEqual(["batch", "cursors"]);
  });

  it("wake resolves a waiting nextChange", async () => {
    const queue = createInOrderSettlement();
    const waiting = queue.nextChange();
    queue.wake();
    await expect(waiting).resolves.toBeUndefined();
  });
});
