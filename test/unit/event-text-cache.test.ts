/**
 * The memory of events read (src/store/event-text-cache.ts): bounded in bytes, emptied
 * oldest first, and never answering across epochs or partners.
 */
import { describe, expect, it } from "vitest";
import { EventTextCache, type KeptEvent } from "../../src/store/event-text-cache.ts";

const event = (seq: number, bytes = 100): KeptEvent => ({
  seq,
  shopId: "s1",
  bytes: Buffer.from(`{"seq":${seq}}`.padEnd(bytes, " ")),
});

describe("event text cache", () => {
  it("keeps a partner's events by seq, in the epoch they were read in only", () => {
    const cache = new EventTextCache(1_000_000);
    cache.put("e1", "p1", [event(1), event(2)]);
    expect(cache.events("e1", "p1")?.get(2)?.bytes.toString()).toMatch(/^\{"seq":2\}/);
    expect(cache.events("e1", "p2")).toBeUndefined();
    expect(cache.events("e2", "p1")).toBeUndefined();
    // A new epoch's events replace everything the old one kept.
    cache.put("e2", "p1", [event(1)]);
    expect(cache.events("e1", "p1")).toBeUndefined();
    expect(cache.stats.events).toBe(1);
  });

  it("stays within its bytes, letting the oldest go first", () => {
    const cache = new EventTextCache(10 * (1_000 + 96));
    for (let seq = 1; seq <= 25; seq++) cache.put("e", "p", [event(seq, 1_000)]);
    const kept = cache.events("e", "p")!;
    expect(cache.stats.bytes).toBeLessThanOrEqual(10 * (1_000 + 96));
    expect([...kept.keys()]).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
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
