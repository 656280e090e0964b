/**
 * Chaos: a TCP proxy between the consumers and the broker drops 30% of the
 * PUBLISH frames, duplicates 10%, delays (and so reorders) 5%, and cuts each
 * connection after 0.3–1.5 s, while 3,000 events are written across two
 * shops. A partner consumer (backend credential) and a shop consumer
 * (device credential) must each hand out exactly their events, once, in order.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Consumer, createConsumer, type OrderEvent } from "../../src/client/index.ts";
import { type ChaosProxy, seededRandom, startChaosProxy } from "./chaos-proxy.ts";
import { appendEvents, nextEvent, readAll, type System, startSystem } from "./helpers.ts";

const EVENTS = 3_000;
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 100_000);

let system: System;
let proxy: ChaosProxy;

beforeAll(async () => {
  system = await startSystem({ watermarkMs: 200 });
  proxy = await startChaosProxy(
    { host: "127.0.0.1", port: system.mqttPort },
    {
      drop: 0.3,
      duplicate: 0.1,
      delay: 0.05,
      maxDelayMs: 40,
      cutAfterMs: [300, 1_500],
      random: seededRandom(SEED),
    },
  );
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await system?.close();
});

const follow = (consumer: Consumer) => {
  const events: OrderEvent[] = [];
  const sources = { mqtt: 0, rest: 0 };
  const gapFills: number[] = [];
  consumer.on("handled", ({ source }) => sources[source]++);
  consumer.on("gap-filled", ({ count }) => gapFills.push(count));
  if (process.env.CHAOS_DEBUG) {
    for (const name of ["connecting", "connected", "disconnected", "live", "catching-up", "error"] as const) {
      consumer.on(name, (info: unknown) =>
        process.stdout.write(`${consumer.clientId.slice(-12)} ${name} ${JSON.stringify(info)}\n`),
      );
    }
  }
  const done = consumer.run((event) => {
    events.push(event);
  });
  done.catch(() => undefined);
  return { events, sources, gapFills, done };
};

/** Resolves once the consumer handed out `seq` (at once if it already did). */
const reached = (consumer: Consumer, seq: number, timeoutMs: number) =>
  consumer.status().seq >= seq
    ? Promise.resolve()
    : nextEvent(consumer, "handled", (h: { seq: number }) => h.seq >= seq, timeoutMs);

it(`hands out ${EVENTS} events once and in order through drops, duplicates, reordering and cuts (seed ${SEED})`, async () => {
  const partner = await system.seed(2);
  const common = {
    apiUrl: system.apiUrl,
    mqttUrl: proxy.url,
    partner: partner.id,
    watermarkMs: 200,
    reconnectMs: 50,
    degradedPollMs: 300,
    pollIntervalMs: 60_000,
    retry: { initialMs: 10, maxMs: 500 },
  };
  const partnerConsumer = createConsumer({
    ...common,
    credentialId: partner.backend.id,
    secret: partner.backend.secret,
    name: "chaos-partner",
  });
  const device = partner.devices[0]!;
  const shopConsumer = createConsumer({
    ...common,
    credentialId: device.id,
    secret: device.secret,
    shop: partner.shops[0]!,
    name: "chaos-shop",
  });
  const both = [follow(partnerConsumer), follow(shopConsumer)] as const;
  await Promise.all([nextEvent(partnerConsumer, "live"), nextEvent(shopConsumer, "live")]);

  // Small batches, so most events are pushed while the consumers are live.
  await appendEvents(system, partner.id, partner.shops, EVENTS, 10);

  const expectedPartner = await readAll(system.apiUrl, partner.backend.secret);
  const expectedShop = await readAll(system.apiUrl, device.secret);
  expect(expectedPartner.length).toBe(EVENTS);
  expect(expectedShop.length).toBe(EVENTS / 2);
  await Promise.all([
    reached(partnerConsumer, expectedPartner.at(-1)!.seq, 40_000),
    reached(shopConsumer, expectedShop.at(-1)!.seq, 40_000),
  ]);
  await Promise.all([partnerConsumer.stop(), shopConsumer.stop()]);

  const [p, s] = both;
  expect(p.events.map((e) => e.seq)).toEqual(expectedPartner.map((e) => e.seq));
  expect(s.events.map((e) => e.seq)).toEqual(expectedShop.map((e) => e.seq));
  expect(s.events.every((e) => e.shop_id === partner.shops[0])).toBe(true);

  process.stdout.write(
    `chaos seed ${SEED}: proxy ${JSON.stringify(proxy.stats)}; partner ${JSON.stringify(p.sources)} gap fills ${p.gapFills.length}; shop ${JSON.stringify(s.sources)} gap fills ${s.gapFills.length}\n`,
  );
  // The chaos really happened, and push did part of the work.
  expect(proxy.stats.dropped).toBeGreaterThan(100);
  expect(proxy.stats.duplicated).toBeGreaterThan(10);
  expect(proxy.stats.delayed).toBeGreaterThan(5);
  expect(proxy.stats.cuts).toBeGreaterThan(2);
  expect(p.sources.mqtt).toBeGreaterThan(0);
  expect(s.sources.mqtt).toBeGreaterThan(0);
  expect(p.gapFills.length + s.gapFills.length).toBeGreaterThan(0);
}, 180_000);
