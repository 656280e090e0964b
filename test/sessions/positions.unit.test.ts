/**
 * The pure parts of persistent sessions: the position is what was
 * acknowledged IN ORDER, a covering cursor vouches for everything before
 * it, and a session's subscriptions say what to replay and at which QoS.
 */
import { describe, expect, it } from "vitest";
import { createAckTracker } from "../../src/sessions/acknowledgements.ts";
import { planReplay, readLeadingSeq } from "../../src/sessions/replay-plan.ts";

describe("the acknowledged position", () => {
  it("moves only past what was acknowledged in order", () => {
    const t = createAckTracker({ position: 10, sentSeq: 10 });
    t.sent(1, 11, 11);
    t.sent(2, 12, 12);
    t.sent(3, 13, 13);
    expect(t.sentSeq).toBe(13);
    expect(t.acked(2)).toBe(false);
    expect(t.position).toBe(10);
    expect(t.acked(1)).toBe(true);
    expect(t.position).toBe(12);
    expect(t.inflightIds()).toEqual({ 13: 3 });
    t.acked(3);
    expect(t.position).toBe(13);
    expect(t.inFlight).toBe(0);
  });

  it("a message whose packet id was reused before its acknowledgement blocks the position for good", () => {
    const t = createAckTracker({ position: 0, sentSeq: 0 });
    t.sent(7, 1, 1);
    t.sent(7, 2, 2);
    t.acked(7);
    expect(t.position).toBe(0);
  });

  it("a covering cursor moves it; a message without a mark keeps its place in line", () => {
    const t = createAckTracker({ position: 5, sentSeq: 5 });
    t.sent(1, undefined, undefined);
    t.sent(2, 40, undefined);
    t.acked(2);
    expect(t.position).toBe(5);
    t.acked(1);
    expect(t.position).toBe(40);
    // A cursor is not an event: what was written stays at the events.
    expect(t.sentSeq).toBe(5);
  });

  it("keeps QoS 2 packet ids between PUBREC and PUBCOMP", () => {
    const t = createAckTracker({ position: 0, sentSeq: 0, pubrels: [9] });
    t.sent(1, 1, 1);
    t.acked(1);
    t.pubrelSent(1);
    expect(t.pubrels().sort()).toEqual([1, 9]);
    t.completed(9);
    t.completed(1);
    expect(t.pubrels()).toEqual([]);
    expect(t.position).toBe(1);
  });
});

describe("the replay plan of a session's subscriptions", () => {
  it("replays QoS 1 and 2 event subscriptions at the highest granted QoS, not QoS 0 ones", () => {
    const plan = planReplay("acme", [
      { topic: "partners/acme/shops/s1/orders/+", qos: 1 },
      { topic: "partners/acme/shops/s1/orders/created", qos: 2 },
      { topic: "partners/acme/shops/s2/orders/+", qos: 0 },
    ]);
    expect(plan.replaysEvents).toBe(true);
    expect(plan.shopId).toBe("s1");
    expect(plan.qosFor("partners/acme/shops/s1/orders/created")).toBe(2);
    expect(plan.qosFor("partners/acme/shops/s1/orders/status_changed")).toBe(1);
    expect(plan.qosFor("partners/acme/shops/s2/orders/created")).toBe(0);
    expect([...plan.coveringCursors].sort()).toEqual([
      "partners/acme/cursor",
      "partners/acme/shops/s1/cursor",
    ]);
  });

  it("reads the whole partner for a wildcard or several shops, and follows device statuses", () => {
    const plan = planReplay("acme", [
      { topic: "partners/acme/#", qos: 1 },
      { topic: "partners/acme/devices/+/status", qos: 1 },
    ]);
    expect(plan.shopId).toBeUndefined();
    expect([...plan.coveringCursors]).toEqual(["partners/acme/cursor"]);
    expect(plan.statusFilters.map((s) => s.topic)).toEqual([
      "partners/acme/#",
      "partners/acme/devices/+/status",
    ]);
    expect(planReplay("acme", [{ topic: "partners/acme/cursor", qos: 1 }]).replaysEvents).toBe(false);
  });

  it("reads the seq at the start of an event or cursor payload, and nothing else", () => {
    expect(readLeadingSeq('{"seq":123,"epoch":"x"}')).toBe(123);
    expect(readLeadingSeq(Buffer.from('{"seq":0,"epoch":"x"}'))).toBe(0);
    expect(readLeadingSeq('{"state":"normal"}')).toBeUndefined();
    expect(readLeadingSeq("online")).toBeUndefined();
    expect(readLeadingSeq('{"seq":,')).toBeUndefined();
  });
});
