/**
 * Consumer test support: the whole system in this process (API, embedded
 * broker, bridge) on free ports over a fresh database (a new Postgres
 * database when DATABASE_URL is set, in-memory PGlite otherwise), seeded
 * partners, orders created through the HTTP API, and waiting on the SDK's
 * typed events instead of sleeping.
 */
import { randomUUID } from "node:crypto";
import type { EventEmitter } from "node:events";
import type { OrderEvent } from "../../src/domain/events.ts";
import { allocateSeq, appendEvent } from "../../src/store/event-log.ts";
import type { System } from "../support/system.ts";

export { type System, startSystem } from "../support/system.ts";

/** Creates `count` orders through POST /v1/orders, round robin over `shops`, `concurrency` at a time. */
export const createOrders = async (
  apiUrl: string,
  secret: string,
  shops: string[],
  count: number,
  concurrency = 4,
): Promise<void> => {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const response = await fetch(`${apiUrl}/v1/orders`, {
        method: "POST",
        headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
        body: JSON.stringify({
          shop_id: shops[i % shops.length],
          items: [{ sku: "latte", quantity: 1 + (i % 3) }],
        }),
      });
      if (response.status !== 201)
        throw new Error(`POST /v1/orders: ${response.status} ${await response.text()}`);
      await response.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
};

/**
 * Appends `count` order.created events round robin over `shops`, `batch` per
 * transaction, through the event log's own append path (gapless seq,
 * prev_shop_seq), then rings the in-process bridge and waits until it
 * published the batch: events arrive over time, as in production, and the
 * writer cannot starve the bridge (PGlite runs one statement at a time in
 * this process). Much faster than the HTTP API; the consumer only reads events.
 */
export const appendEvents = async (
  system: System,
  partnerId: string,
  shops: string[],
  count: number,
  batch = 50,
): Promise<void> => {
  const bridge = system.running.bridge!;
  for (let done = 0; done < count; ) {
    let last = 0;
    const n = Math.min(batch, count - done);
    await system.running.db.transaction(async (tx) => {
      for (let i = 0; i < n; i++) {
        const shopId = shops[(done + i) % shops.length]!;
        const seq = await allocateSeq(tx, partnerId);
        last = seq;
        const now = new Date();
        const id = randomUUID();
        await appendEvent(tx, {
          partnerId,
          shopId,
          orderId: id,
          type: "order.created",
          seq,
          occurredAt: now,
          order: {
            id,
            partner_id: partnerId,
            shop_id: shopId,
            status: "created",
            items: [{ sku: "latte", quantity: 1 }],
            created_at: now.toISOString(),
            updated_at: now.toISOString(),
            last_seq: seq,
          },
        });
      }
    });
    done += n;
    const published = new Promise<void>((resolve) => {
      const check = () => {
        if ((bridge.publishedSeqs().get(partnerId) ?? 0) < last) return;
        bridge.off("published", check);
        resolve();
      };
      bridge.on("published", check);
      check();
    });
    bridge.wake(partnerId);
    await published;
    // PGlite answers in microtasks: without a turn of the event loop, timers (MQTT.js
    // reconnects, the consumer's polls) would starve while this loop runs. A yield, not a sleep.
    await new Promise((resolve) => setImmediate(resolve));
  }
};

/** Every event of a scope from the REST history: the expected output of a consumer. */
export const readAll = async (apiUrl: string, secret: string, shop?: string): Promise<OrderEvent[]> => {
  const out: OrderEvent[] = [];
  let after = 0;
  for (;;) {
    const url = `${apiUrl}/v1/events?after=${after}&limit=1000${shop ? `&shop_id=${shop}` : ""}`;
    const response = await fetch(url, { headers: { authorization: `Bearer ${secret}` } });
    if (response.status !== 200) throw new Error(`GET /v1/events: ${response.status}`);
    const page = (await response.json()) as { events: OrderEvent[] };
    if (page.events.length === 0) return out;
    out.push(...page.events);
    after = page.events.at(-1)!.seq;
  }
};

/**
 * Resolves with the first event `name` (its first argument) that satisfies
 * `predicate`, listening from now on; rejects after `timeoutMs`.
 */
export const nextEvent = <T>(
  emitter: EventEmitter,
  name: string,
  predicate: (value: T) => boolean = () => true,
  timeoutMs = 20_000,
): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const listener = (value: T) => {
      if (!predicate(value)) return;
      clearTimeout(timer);
      emitter.off(name, listener);
      resolve(value);
    };
    const timer = setTimeout(() => {
      emitter.off(name, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${name}'`));
    }, timeoutMs);
    emitter.on(name, listener);
  });

/** Asserts the seqs are strictly increasing with no repeats and returns them. */
export const seqsOf = (events: OrderEvent[]): number[] => events.map((e) => e.seq);
