/**
 * Reads shared by callers asking at once (src/store/shared-reads.ts): each caller gets a read
 * that started after it asked, and everyone arriving while one is in flight shares one more.
 */
import { describe, expect, it } from "vitest";
import { SharedReads } from "../../src/store/shared-reads.ts";

/** Reads that finish when the test says, each answering its own start number. */
const controlledReads = () => {
  const started: Array<{ finish(): void; fail(error: Error): void }> = [];
  const run = () =>
    new Promise<number>((resolve, reject) => {
      const number = started.length + 1;
      started.push({ finish: () => resolve(number), fail: reject });
    });
  return { started, run };
};

describe("shared reads", () => {
  it("gives callers arriving during a read the one read started after it, not the one under way", async () => {
    const reads = new SharedReads<number>();
    const { started, run } = controlledReads();
    const first = reads.read("k", run);
    const second = reads.read("k", run);
    const third = reads.read("k", run);
    expect(started).toHaveLength(1);
    started[0]!.finish();
    expect(await first).toBe(1);
    await until(() => started.length === 2);
    started[1]!.finish();
    expect(await second).toBe(2);
    expect(await third).toBe(2);
    // Nothing in flight: the next caller starts a read of its own at once.
    const fourth = reads.read("k", run);
    expect(started).toHaveLength(3);
    started[2]!.finish();
    expect(await fourth).toBe(3);
  });

  it("keeps keys apart, and hands a failed read's error to its callers only", async () => {
    const reads = new SharedReads<number>();
    const { started, run } = controlledReads();
    const a = reads.read("a", run);
    const b = reads.read("b", run);
    expect(started).toHaveLength(2);
    const afterA = reads.read("a", run);
    started[0]!.fail(new Error("connection lost"));
    await expect(a).rejects.toThrow("connection lost");
    await until(() => started.length === 3);
    started[2]!.finish();
    expect(await afterA).toBe(3);
    started[1]!.finish();
    expect(await b).toBe(2);
  });
});

/** Lets pending promise callbacks run until `done` holds (at most a few hundred turns). */
const until = async (done: () => boolean) => {
  for (let turn = 0; turn < 500 && !done(); turn++) await Promise.resolve();
  expect(done()).toBe(true);
};
