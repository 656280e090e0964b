/**
 * A partner's position (moved past accepted events, announced and committed
 * apart) and the commit of every partner's position in one call, one at a
 * time, put back on failure. The log is an in-memory stand-in of the port. No services.
 */
import { describe, expect, it } from "vitest";
import { createCursorCommits } from "../../src/delivery/cursor-commits.ts";
import { createPartnerPosition, type PartnerPosition } from "../../src/delivery/partner-position.ts";
import type { CursorCommit, PartnerCursors } from "../../src/domain/delivery.ts";
import type { OrderEvent } from "../../src/domain/events.ts";

const cursorsOf = (partnerId: string, seq = 0): PartnerCursors => ({
  partnerId,
  headSeq: seq,
  qos: 1,
  state: "normal",
  published: { seq, occurredAt: null },
  shops: new Map(),
});

const eventOf = (partnerId: string, seq: number, shopId: string): OrderEvent =>
  ({
    partner_id: partnerId,
    seq,
    shop_id: shopId,
    occurred_at: `2026-12-03T00:00:0${seq}.000Z`,
  }) as OrderEvent;

describe("partner position", () => {
  it("moves past accepted events, in place, remembering the shops to announce and to commit", () => {
    const position = createPartnerPosition(cursorsOf("p", 2));
    const before = position.cursors.published;
    position.accept([eventOf("p", 3, "s1"), eventOf("p", 4, "s2"), eventOf("p", 5, "s1")]);
    expect(position.cursors.published).toEqual({ seq: 5, occurredAt: "2026-12-03T00:00:05.000Z" });
    expect(before.seq).toBe(2);
    expect(position.cursors.headSeq).toBe(5);
    expect(position.cursors.shops.get("s1")?.seq).toBe(5);
    expect(position.unannounced).toBe(2);
    expect(position.takeUnannounced(123).sort()).toEqual(["s1", "s2"]);
    expect(position.announcedAt).toBe(123);
    expect(position.unannounced).toBe(0);
    position.restoreUnannounced(["s2"]);
    expect(position.unannounced).toBe(1);
  });

  it("offers a commit only when the durable cursor trails", () => {
    const position = createPartnerPosition(cursorsOf("p", 7));
    expect(position.takeCommit()).toBeUndefined();
    position.accept([eventOf("p", 8, "s1")]);
    const commit = position.takeCommit()!;
    expect(commit.partner.seq).toBe(8);
    expect([...commit.shops.keys()]).toEqual(["s1"]);
    // Taken: a commit in flight is not offered twice.
    expect(position.takeCommit()?.shops.size ?? 0).toBe(0);
    position.committed(commit);
    expect(position.takeCommit()).toBeUndefined();
  });
});

describe("cursor commits", () => {
  const setup = () => {
    const calls: CursorCommit[][] = [];
    let failNext = false;
    let release: (() => void) | undefined;
    const positions: PartnerPosition[] = [
      createPartnerPosition(cursorsOf("a")),
      createPartnerPosition(cursorsOf("b")),
    ];
    const errors: unknown[] = [];
    const commits = createCursorCommits({
      log: {
        async commitCursors(batch) {
          calls.push(batch);
          if (release === undefined && failNext) {
            failNext = false;
            throw new Error("database gone");
          }
          if (release !== undefined) await new Promise<void>((resolve) => (release = resolve));
        },
      },
      positions: () => positions,
      onError: (error) => errors.push(error),
    });
    return {
      calls,
      positions,
      errors,
      commits,
      failNext: () => (failNext = true),
      hold: () => (release = () => {}),
      releaseHeld: () => {
        const held = release;
        release = undefined;
        held?.();
      },
    };
  };

  it("commits every trailing partner in one call, and nothing when none trails", async () => {
    const { calls, positions, commits } = setup();
    await commits.commitAll();
    expect(calls).toEqual([]);
    positions[0]!.accept([eventOf("a", 1, "s")]);
    positions[1]!.accept([eventOf("b", 1, "t")]);
    await commits.commitAll();
    expect(calls.length).toBe(1);
    expect(calls[0]!.map((commit) => commit.partnerId)).toEqual(["a", "b"]);
    await commits.commitAll();
    expect(calls.length).toBe(1);
  });

  it("puts a failed commit back for the next one, and reports the failure without throwing", async () => {
    const { calls, positions, errors, commits, failNext } = setup();
    positions[0]!.accept([eventOf("a", 1, "s")]);
    failNext();
    await commits.commitAll();
    expect(errors.length).toBe(1);
    await commits.commitAll();
    expect(calls.length).toBe(2);
    expect(calls[1]![0]!.partner.seq).toBe(1);
    expect([...calls[1]![0]!.shops.keys()]).toEqual(["s"]);
  });

  it("runs one commit at a time: a call meanwhile waits and then commits what moved since", async () => {
    const { calls, positions, commits, hold, releaseHeld } = setup();
    positions[0]!.accept([eventOf("a", 1, "s")]);
    hold();
    const first = commits.commitAll();
    expect(commits.busy).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    positions[0]!.accept([eventOf("a", 2, "s")]);
    const second = commits.commitAll();
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls.length).toBe(1);
    releaseHeld();
    await first;
    await second;
    expect(calls.map((batch) => batch[0]!.partner.seq)).toEqual([1, 2]);
    expect(commits.busy).toBe(false);
  });
});
