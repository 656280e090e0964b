/**
 * The consumer against the whole system in this process: catch-up then
 * live, shop scope, restart with the file store, a handler that throws,
 * epoch change and expired cursor → resync.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Consumer,
  type ConsumerOptions,
  createConsumer,
  createFileStore,
  createMemoryStore,
  type OrderEvent,
  ResyncRequiredError,
} from "../../src/client/index.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import { appendEvents, createOrders, nextEvent, readAll, type System, startSystem } from "./helpers.ts";

let system: System;
let tmp: string;

beforeAll(async () => {
  system = await startSystem({ watermarkMs: 200 });
  tmp = mkdtempSync(path.join(os.tmpdir(), "brewcast-consumer-"));
}, 120_000);

afterAll(async () => {
  await system?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const optionsFor = (partner: SeededPartner, overrides: Partial<ConsumerOptions> = {}): ConsumerOptions => ({
  apiUrl: system.apiUrl,
  mqttUrl: system.mqttUrl,
  credentialId: partner.backend.id,
  secret: partner.backend.secret,
  partner: partner.id,
  watermarkMs: 200,
  reconnectMs: 100,
  retry: { initialMs: 10, maxMs: 200 },
  ...overrides,
});

/** Runs a consumer that records what it hands out. */
const record = (consumer: Consumer, onEvent?: (event: OrderEvent) => unknown) => {
  const events: OrderEvent[] = [];
  const done = consumer.run(async (event) => {
    await onEvent?.(event);
    events.push(event);
  });
  done.catch(() => undefined);
  return { events, done };
};

const expectOnceInOrder = (got: OrderEvent[], expected: OrderEvent[]) => {
  expect(got.map((e) => e.seq)).toEqual(expected.map((e) => e.seq));
};

describe("consumer", () => {
  it("catches up over REST, goes live, then hands out pushed events in order", async () => {
    const partner = await system.seed(2);
    await appendEvents(system, partner.id, partner.shops, 120);
    const consumer = createConsumer(optionsFor(partner));
    const catching = nextEvent<{ from: number; to: number; count: number }>(consumer, "catching-up");
    const live = nextEvent<{ seq: number }>(consumer, "live");
    const { events } = record(consumer);
    const first = await catching;
    expect(first.from).toBe(0);
    expect(first.to).toBeGreaterThanOrEqual(120);
    expect((await live).seq).toBeGreaterThanOrEqual(120);

    const pushed: string[] = [];
    consumer.on("handled", ({ source }) => pushed.push(source));
    const last = nextEvent<{ seq: number }>(consumer, "handled", ({ seq }) => seq === 180);
    // Live: through the API (its commit rings the bridge), then by push.
    await createOrders(system.apiUrl, partner.backend.secret, partner.shops, 20);
    await appendEvents(system, partner.id, partner.shops, 40, 5);
    await last;
    await consumer.stop();
    expectOnceInOrder(events, await readAll(system.apiUrl, partner.backend.secret));
    // Live events came by push, not by the (60 s) poll.
    expect(pushed.filter((s) => s === "mqtt").length).toBeGreaterThan(0);
  });

  it("follows one shop with a device credential (prev_shop_seq chain), learning the partner id", async () => {
    const partner = await system.seed(3);
    await appendEvents(system, partner.id, partner.shops, 90);
    const device = partner.devices[1]!;
    const consumer = createConsumer(
      optionsFor(partner, {
        credentialId: device.id,
        secret: device.secret,
        shop: partner.shops[1]!,
        partner: undefined,
      }),
    );
    const live = nextEvent(consumer, "live");
    const { events } = record(consumer);
    await live;
    const expectedBefore = await readAll(system.apiUrl, device.secret);
    const last = expectedBefore.at(-1)!.seq;
    await appendEvents(system, partner.id, partner.shops, 30);
    const expected = await readAll(system.apiUrl, device.secret);
    await (events.at(-1)?.seq === expected.at(-1)!.seq
      ? Promise.resolve()
      : nextEvent(consumer, "handled", ({ seq }: { seq: number }) => seq === expected.at(-1)!.seq));
    await consumer.stop();
    expect(last).toBeGreaterThan(0);
    expect(events.every((e) => e.shop_id === partner.shops[1])).toBe(true);
    expectOnceInOrder(events, expected);
    expect(expected.length).toBe(40);
  });

  it("resumes after the last handled event with the file store, no duplicate", async () => {
    const partner = await system.seed(2);
    await appendEvents(system, partner.id, partner.shops, 100);
    const file = path.join(tmp, "resume", "position.json");
    const handedOut: OrderEvent[] = [];

    const first = createConsumer(optionsFor(partner, { store: createFileStore(file), name: "resume" }));
    const stopAt = nextEvent(first, "handled", ({ seq }: { seq: number }) => seq === 40);
    const run1 = record(first, (event) => {
      handedOut.push(event);
      // Stop from inside the handler: stop() waits for this handler, so 40 is the last.
      if (event.seq === 40) void first.stop();
    });
    await stopAt;
    await run1.done;
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ seq: 40 });

    await appendEvents(system, partner.id, partner.shops, 20);
    const second = createConsumer(optionsFor(partner, { store: createFileStore(file), name: "resume" }));
    const caught = nextEvent(second, "handled", ({ seq }: { seq: number }) => seq === 120);
    record(second, (event) => {
      handedOut.push(event);
    });
    await caught;
    await second.stop();
    expectOnceInOrder(handedOut, await readAll(system.apiUrl, partner.backend.secret));
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ seq: 120 });
  });

  it("retries a handler that throws, without moving the position", async () => {
    const partner = await system.seed(2);
    await appendEvents(system, partner.id, partner.shops, 30);
    const store = createMemoryStore();
    const consumer = createConsumer(optionsFor(partner, { store }));
    const failures: { seq: number | undefined; attempt: number | undefined; saved: number | undefined }[] =
      [];
    consumer.on("error", ({ during, seq, attempt }) => {
      if (during === "handler") failures.push({ seq, attempt, saved: store.current?.seq });
    });
    let throwsLeft = 3;
    const done = nextEvent(consumer, "handled", ({ seq }: { seq: number }) => seq === 30);
    const { events } = record(consumer, (event) => {
      if (event.seq === 17 && throwsLeft-- > 0) throw new Error("downstream unavailable");
    });
    await done;
    await consumer.stop();
    expect(failures).toEqual([
      { seq: 17, attempt: 1, saved: 16 },
      { seq: 17, attempt: 2, saved: 16 },
      { seq: 17, attempt: 3, saved: 16 },
    ]);
    expectOnceInOrder(events, await readAll(system.apiUrl, partner.backend.secret));
    expect(store.current?.seq).toBe(30);
  });

  it("stops with a resync signal when the stored epoch names another log", async () => {
    const partner = await system.seed(1);
    await appendEvents(system, partner.id, partner.shops, 5);
    const store = createMemoryStore({ seq: 3, epoch: "00000000-0000-4000-8000-000000000000" });
    const consumer = createConsumer(optionsFor(partner, { store }));
    const resync = nextEvent<{ reason: string; storedEpoch: string; epoch: string }>(consumer, "resync");
    const handled: OrderEvent[] = [];
    const done = consumer.run((event) => {
      handled.push(event);
    });
    const signal = await resync;
    expect(signal.reason).toBe("epoch-changed");
    expect(signal.storedEpoch).toBe("00000000-0000-4000-8000-000000000000");
    expect(signal.epoch).toMatch(/^[0-9a-f-]{36}$/);
    await expect(done).rejects.toBeInstanceOf(ResyncRequiredError);
    expect(handled).toEqual([]);
    expect(store.current).toEqual({ seq: 3, epoch: "00000000-0000-4000-8000-000000000000" });
  });

  it("stops with a resync signal when its position is older than the retained history", async () => {
    const partner = await system.seed(1);
    await appendEvents(system, partner.id, partner.shops, 5);
    await system.running.db.query("UPDATE partners SET pruned_through_seq = 3 WHERE id = $1", [partner.id]);
    const consumer = createConsumer(optionsFor(partner, { after: 1 }));
    const resync = nextEvent<{ reason: string }>(consumer, "resync");
    const done = consumer.run(() => undefined);
    expect((await resync).reason).toBe("cursor-expired");
    await expect(done).rejects.toBeInstanceOf(ResyncRequiredError);
  });

  it("gives up on bad credentials with the error", async () => {
    const partner = await system.seed(1);
    const consumer = createConsumer(optionsFor(partner, { secret: "bcs_not-the-secret" }));
    // REST (401) and MQTT (CONNACK 4) both refuse it; whichever answers first is the error.
    await expect(consumer.run(() => undefined)).rejects.toThrow(/401|Bad username or password/);
  });
});
