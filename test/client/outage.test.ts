/**
 * Push outages. The broker is embedded in the same process as the API, so
 * "the broker is stopped" is played by the TCP proxy between consumer and
 * broker: it cuts every connection and refuses new ones for 10 s while
 * events are written. And a half-dead link: TCP stays up but nothing
 * arrives (no PUBLISH, no PINGRESP), which only the watermark reveals.
 */
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { type Consumer, createConsumer, type OrderEvent } from "../../src/client/index.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import { type ChaosProxy, startChaosProxy } from "./chaos-proxy.ts";
import { appendEvents, nextEvent, readAll, type System, startSystem } from "./helpers.ts";

const WATERMARK_MS = 200;
let system: System;
let proxy: ChaosProxy;

beforeAll(async () => {
  system = await startSystem({ watermarkMs: WATERMARK_MS });
  proxy = await startChaosProxy({ host: "127.0.0.1", port: system.mqttPort });
}, 120_000);

afterEach(() => {
  proxy.setRefusing(false);
  proxy.setSilent(false);
});

afterAll(async () => {
  await proxy?.close();
  await system?.close();
});

const start = (partner: SeededPartner, name: string) => {
  const consumer = createConsumer({
    apiUrl: system.apiUrl,
    mqttUrl: proxy.url,
    credentialId: partner.backend.id,
    secret: partner.backend.secret,
    partner: partner.id,
    name,
    watermarkMs: WATERMARK_MS,
    reconnectMs: 100,
    retry: { initialMs: 10, maxMs: 200 },
  });
  const events: OrderEvent[] = [];
  const sources: ("mqtt" | "rest")[] = [];
  consumer.on("handled", ({ source }) => sources.push(source));
  const done = consumer.run((event) => {
    events.push(event);
  });
  done.catch(() => undefined);
  return { consumer, events, sources };
};

const reached = (consumer: Consumer, seq: number, timeoutMs = 20_000) =>
  consumer.status().seq >= seq
    ? Promise.resolve()
    : nextEvent(consumer, "handled", (h: { seq: number }) => h.seq >= seq, timeoutMs);

it("keeps handing out events over REST while the broker is unreachable for 10 s, then goes live again", async () => {
  const partner = await system.seed(2);
  const { consumer, events, sources } = start(partner, "outage");
  await nextEvent(consumer, "live");
  await appendEvents(system, partner.id, partner.shops, 20);
  await reached(consumer, 20);

  const attempts: number[] = [];
  consumer.on("connecting", ({ attempt }) => attempts.push(attempt));
  const down = nextEvent(consumer, "disconnected");
  proxy.setRefusing(true);
  // On a loaded machine a stalled watermark may already have dropped the link (silence).
  if (consumer.status().connected) await down;
  else down.catch(() => undefined);
  const outageStart = Date.now();
  let written = 20;
  let batches = 0;
  // Write in batches for 10 s; each batch must reach the application through REST polls alone.
  while (Date.now() - outageStart < 10_000) {
    await appendEvents(system, partner.id, partner.shops, 25);
    written += 25;
    batches++;
    await reached(consumer, written);
  }
  const handedOutDuringOutage = sources.slice(20);
  expect(consumer.status().connected).toBe(false);
  expect(handedOutDuringOutage.length).toBe(written - 20);
  expect(handedOutDuringOutage.every((s) => s === "rest")).toBe(true);
  expect(attempts.length).toBeGreaterThan(3);
  expect(proxy.stats.refused).toBeGreaterThan(3);

  const live = nextEvent<{ seq: number; ms: number }>(consumer, "live");
  proxy.setRefusing(false);
  expect((await live).seq).toBe(written);
  const afterOutage = sources.length;
  await appendEvents(system, partner.id, partner.shops, 30, 5);
  await reached(consumer, written + 30);
  await consumer.stop();

  expect(events.map((e) => e.seq)).toEqual(
    (await readAll(system.apiUrl, partner.backend.secret)).map((e) => e.seq),
  );
  expect(sources.slice(afterOutage)).toContain("mqtt");
  expect(batches).toBeGreaterThan(1);
}, 60_000);

it("treats a silent link (no watermark for 3 intervals) as dead: polls meanwhile, reconnects, goes live", async () => {
  const partner = await system.seed(2);
  const { consumer, events, sources } = start(partner, "silence");
  await nextEvent(consumer, "live");

  const silence = nextEvent<{ reason: string }>(consumer, "disconnected");
  proxy.setSilent(true);
  expect((await silence).reason).toBe("silence");
  // Not before the watermark had been missing for the configured intervals, counted from the
  // last message that reached the consumer (up to an interval before the link went silent).
  expect(proxy.stats.lastPublishAt).toBeGreaterThan(0);
  expect(Date.now() - proxy.stats.lastPublishAt).toBeGreaterThanOrEqual(3 * WATERMARK_MS);

  await appendEvents(system, partner.id, partner.shops, 20);
  await reached(consumer, 20);
  expect(sources.every((s) => s === "rest")).toBe(true);

  const live = nextEvent(consumer, "live");
  proxy.setSilent(false);
  proxy.cutAll(); // the connection attempt made while silent waits for a CONNACK that was swallowed
  await live;
  await appendEvents(system, partner.id, partner.shops, 20, 5);
  await reached(consumer, 40);
  await consumer.stop();
  expect(events.map((e) => e.seq)).toEqual(
    (await readAll(system.apiUrl, partner.backend.secret)).map((e) => e.seq),
  );
  expect(sources.slice(20)).toContain("mqtt");
}, 60_000);
