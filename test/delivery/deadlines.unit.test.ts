/** The delivery core's deadlines: one shared timer fails what did not settle in time. No services. */
import { describe, expect, it } from "vitest";
import { createDeadlines } from "../../src/delivery/deadlines.ts";

const never = () => new Promise<void>(() => {});

describe("deadlines", () => {
  it("passes a settled promise through, value or error, and stops watching it", async () => {
    const deadlines = createDeadlines(1_000);
    await expect(deadlines.watch(Promise.resolve(7), () => new Error("late"))).resolves.toBe(7);
    await expect(deadlines.watch(Promise.reject(new Error("own")), () => new Error("late"))).rejects.toThrow(
      "own",
    );
    expect(deadlines.watched).toBe(0);
  });

  it("fails a promise that did not settle within ms, with the error it was given, and not much later", async () => {
    const deadlines = createDeadlines(30, 5);
    const started = Date.now();
    await expect(deadlines.watch(never(), () => new Error("late"))).rejects.toThrow("late");
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(29);
    expect(took).toBeLessThan(200);
    expect(deadlines.watched).toBe(0);
  });

  it("fails only the late ones among many watched at once", async () => {
    const deadlines = createDeadlines(40, 5);
    let resolveQuick!: () => void;
    const quick = deadlines.watch(
      new Promise<void>((resolve) => {
        resolveQuick = resolve;
      }),
      () => new Error("quick was late"),
    );
    const slow = deadlines.watch(never(), () => new Error("slow was late"));
    expect(deadlines.watched).toBe(2);
    resolveQuick();
    await expect(quick).resolves.toBeUndefined();
    await expect(slow).rejects.toThrow("slow was late");
  });
});
