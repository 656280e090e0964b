/**
 * The delivery core with a channel of the test's own (what a webhook or SSE
 * channel would be), over an in-memory log and lock that stand in for the
 * ports of src/domain/delivery.ts: in order, past what the channel accepted
 * only, a failing partner backs off alone, the ladder's states. No services;
 * the same behaviour over Postgres and real brokers is in test/bridge/.
 */
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { Channel } from "../../src/delivery/channel.ts";
import { DeliveryCore } from "../../src/delivery/delivery-core.ts";
import type { CursorCommit, DeliveryLog, LeaderLock, PartnerCursors } from "../../src/domain/delivery.ts";
import type { OrderEvent } from "../../src/domain/events.ts";
import type { PartnerState } from "../../src/domain/partners.ts";
import { until as waitUntil } from "../support/wait.ts";

const silent = pino({ level: "silent" });

const eventOf = (partnerId: string, seq: number): OrderEvent =>
  ({
    seq,
    epoch: "test",
    type: "order.created",
    partner_id: partnerId,
    shop_id: `${partnerId}-shop`,
    order_id: `${partnerId}-${seq}`,
    occurred_at: new Date(1_700_000_000_000 + seq).toISOString(),
    prev_shop_seq: seq > 1 ? seq - 1 : null,
  }) as OrderEvent;

/** The event log in memory: each partner's events, its state and its durable seq. */
const memoryLog = (partners: Record<string, { events: number; state?: PartnerState }>) => {
  const events = new Map<string, OrderEvent[]>();
  const states = new Map<string, PartnerState>();
  const durable = new Map<string, number>();
  /** Shops each partner has beside its events' shop; a test may add one while the core runs. */
  const shops = new Map<string, Set<string>>();
  for (const [id, { events: count, state }] of Object.entries(partners)) {
    events.set(
      id,
      Array.from({ length: count }, (_, i) => eventOf(id, i + 1)),
    );
    states.set(id, state ?? "normal");
    durable.set(id, 0);
  }
  const commits: CursorCommit[][] = [];
  const log: DeliveryLog = {
    epoch: "test",
    async loadPartners() {
      return [...events.keys()].map(
        (partnerId): PartnerCursors => ({
          partnerId,
          headSeq: events.get(partnerId)!.length,
          qos: 1,
          state: states.get(partnerId)!,
          published: { seq: durable.get(partnerId)!, occurredAt: null },
          shops: new Map([...(shops.get(partnerId) ?? [])].map((id) => [id, { seq: 0, occurredAt: null }])),
        }),
      );
    },
    async partnersWithBacklog() {
      return [...events.keys()].filter((id) => events.get(id)!.length > durable.get(id)!);
    },
    async readAfter(positions, limitEach) {
      return positions.flatMap(({ partnerId, afterSeq }) =>
        (events.get(partnerId) ?? []).filter((event) => event.seq > afterSeq).slice(0, limitEach),
      );
    },
    async commitCursors(batch) {
      commits.push(batch);
      for (const { partnerId, partner } of batch)
        durable.set(partnerId, Math.max(durable.get(partnerId)!, partner.seq));
    },
    async onDoorbell() {
      return async () => {};
    },
  };
  return { log, durable, commits, shops };
};

const soleLock = (): LeaderLock => ({
  tryAcquire: async () => true,
  onLost: () => {},
  release: async () => {},
});

/** A channel that records what it accepted, and fails a partner's deliveries while told to. */
const recordingChannel = () => {
  const accepted = new Map<string, number[]>();
  const failing = new Set<string>();
  const states: string[] = [];
  /** The shops of each position announcement, in order. */
  const announced: string[][] = [];
  const channel: Channel = {
    name: "test",
    async deliver(partner, events) {
      if (failing.has(partner.partnerId)) throw new Error(`${partner.partnerId} refused`);
      const seqs = accepted.get(partner.partnerId) ?? [];
      seqs.push(...events.map((event) => event.seq));
      accepted.set(partner.partnerId, seqs);
    },
    async announcePosition(_partner, shopIds) {
      announced.push([...shopIds]);
    },
    async announceState(partner) {
      states.push(`${partner.partnerId}:${partner.state}`);
    },
  };
  return { channel, accepted, failing, states, announced };
};

/** The shared wait, with this file's bound. */
const until = (check: () => boolean): Promise<void> => waitUntil(check, 2_000);

const running: DeliveryCore[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((core) => core.stop()));
});

const startCore = async (
  log: DeliveryLog,
  channel: Channel,
  options: { throttleRatePerSecond?: number; watermarkMs?: number } = {},
) => {
  const core = new DeliveryCore({
    log: silent,
    source: log,
    channel,
    lock: soleLock(),
    batchSize: 4,
    backoffInitialMs: 10,
    backoffMaxMs: 20,
    sweepIntervalMs: 20,
    ...options,
  });
  running.push(core);
  await core.start();
  return core;
};

describe("delivery core (in memory)", () => {
  it("hands each partner's events to the channel in seq order and commits the position it accepted", async () => {
    const { log, durable } = memoryLog({ a: { events: 10 }, b: { events: 7 } });
    const { channel, accepted } = recordingChannel();
    const core = await startCore(log, channel);
    expect(core.role).toBe("leader");
    await until(() => durable.get("a") === 10 && durable.get("b") === 7);
    expect(accepted.get("a")).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(accepted.get("b")).toEqual(Array.from({ length: 7 }, (_, i) => i + 1));
  });

  it("a partner whose channel fails backs off alone, its position stays, and it catches up in order", async () => {
    const { log, durable } = memoryLog({ a: { events: 6 }, b: { events: 6 } });
    const { channel, accepted, failing } = recordingChannel();
    failing.add("a");
    const errors: string[] = [];
    const core = await startCore(log, channel);
    core.on("partner-error", ({ partnerId }) => errors.push(partnerId));
    await until(() => durable.get("b") === 6 && errors.length >= 2);
    expect(durable.get("a")).toBe(0);
    expect(accepted.get("a")).toBeUndefined();
    failing.delete("a");
    await until(() => durable.get("a") === 6);
    expect(accepted.get("a")).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new Set(errors)).toEqual(new Set(["a"]));
  });

  it("a shop added while the core runs joins the watermark before its first event", async () => {
    const { log, durable, shops } = memoryLog({ a: { events: 2 } });
    const { channel, announced } = recordingChannel();
    await startCore(log, channel, { watermarkMs: 20 });
    await until(() => durable.get("a") === 2);
    expect(announced.flat()).not.toContain("a-new");
    shops.set("a", new Set(["a-new"]));
    await until(() => announced.some((shopIds) => shopIds.includes("a-new")));
  });

  it("poll_only moves the position without delivering; the state is announced", async () => {
    const { log, durable } = memoryLog({ a: { events: 5, state: "poll_only" } });
    const { channel, accepted, states } = recordingChannel();
    await startCore(log, channel);
    await until(() => durable.get("a") === 5);
    expect(accepted.get("a")).toBeUndefined();
    expect(states).toContain("a:poll_only");
  });

  it("a throttled partner gets no more than its rate", async () => {
    const { log } = memoryLog({ a: { events: 40, state: "throttled" } });
    const { channel, accepted } = recordingChannel();
    const core = await startCore(log, channel, { throttleRatePerSecond: 10 });
    // One second of burst (10), then 10 a second.
    await until(() => (accepted.get("a")?.length ?? 0) >= 10);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(accepted.get("a")!.length).toBeLessThanOrEqual(12);
    core.setPartnerState("a", "normal");
    await until(() => accepted.get("a")!.length === 40);
    expect(accepted.get("a")).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });
});
