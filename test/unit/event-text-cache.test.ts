/**
 * The memory of events read (src/store/event-text-cache.ts): bounded in bytes, emptied
 * oldest first, and never answering across epochs or partners.
 */
import { describe, expect, it } from "vitest";
import type { LoggedEvent } from "../../src/domain/events.ts";
import { EventTextCache } from "../../src/store/event-text-cache.ts";

const event = (seq: number, bytes = 100): LoggedEvent => ({
  seq,
  shopId: "s1",
  type: "order.created",
  json: Buffer.from(`{"seq":${seq}}`.padEnd(bytes, " ")),
});

const seqsKept = (cache: EventTextCache, upTo: number): number[] => {
  const kept = cache.events("e", "p");
  return Array.from({ length: upTo }, (_, i) => i + 1).filter((seq) => kept?.has(seq));
};

describe("event text cache", () => {
  it("keeps a partner's events by seq, in the epoch they were read in only", () => {
    const cache = new EventTextCache(1_000_000);
    cache.put("e1", "p1", [event(1), event(2)]);
    expect(cache.events("e1", "p1")?.get(2)?.json.toString()).toMatch(/^\{"seq":2\}/);
    expect(cache.events("e1", "p2")).toBeUndefined();
    expect(cache.events("e2", "p1")).toBeUndefined();
    // A new epoch's events replace everything the old one kept.
    cache.put("e2", "p1", [event(1)]);
    expect(cache.events("e1", "p1")).toBeUndefined();
    expect(cache.stats.events).toBe(1);
  });

  it("stays within its bytes, letting the oldest go first", () => {
    const cache = new EventTextCache(10 * (1_000 + 128));
    for (let seq = 1; seq <= 25; seq++) cache.put("e", "p", [event(seq, 1_000)]);
    const kept = cache.events("e", "p")!;
    expect(cache.stats.bytes).toBeLessThanOrEqual(10 * (1_000 + 128));
    expect(cache.stats.events).toBe(10);
    expect(seqsKept(cache, 30)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
    expect(kept.has(15)).toBe(false);
  });

  it("gives an event served since it was put one more round before it goes", () => {
    const cache = new EventTextCache(3 * (1_000 + 128));
    cache.put("e", "p", [event(1, 1_000), event(2, 1_000), event(3, 1_000)]);
    cache.events("e", "p")!.get(1);
    cache.put("e", "p", [event(4, 1_000)]);
    expect(seqsKept(cache, 4)).toEqual([1, 3, 4]);
    // It went to the back of the line: the next to go are the others, then it.
    cache.put("e", "p", [event(5, 1_000)]);
    expect(seqsKept(cache, 5)).toEqual([1, 4, 5]);
    cache.put("e", "p", [event(6, 1_000)]);
    cache.put("e", "p", [event(7, 1_000)]);
    expect(seqsKept(cache, 7)).toEqual([5, 6, 7]);
  });

  it("keeps nothing with no memory, and counts an event put twice once", () => {
    const none = new EventTextCache(0);
    none.put("e", "p", [event(1)]);
    expect(none.events("e", "p")).toBeUndefined();
    const cache = new EventTextCache(1_000_000);
    cache.put("e", "p", [event(1), event(1)]);
    cache.put("e", "p", [event(1)]);
    expect(cache.stats.events).toBe(1);
  });
});
