/**
 * The event stream in a real browser: Debian's chromium (headless, driven by
 * playwright-core) opens `new EventSource(...)` with a ticket, through a TCP
 * proxy that cuts every connection mid-stream. EventSource reconnects by
 * itself with Last-Event-ID, and the page sees every event once, in order.
 */
import { existsSync } from "node:fs";
import net from "node:net";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM } from "../support/global-setup.ts";
import { fetchJson } from "../support/http.ts";
import { type System, startSystem } from "../support/system.ts";
import { waitFor } from "../support/wait.ts";

/** What the page keeps of each message. */
interface Seen {
  seq: number;
  lastEventId: string;
}
/** The browser's EventSource, as far as the page uses it (this project's types have no DOM). */
type BrowserEventSource = new (
  url: string,
) => {
  onopen: () => void;
  onmessage: (message: { data: string; lastEventId: string }) => void;
};

/** Forwards to `target`; `cut()` destroys every open connection (a network blip). */
const startCuttingProxy = async (target: number) => {
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, "127.0.0.1");
    open.add(client);
    open.add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut(): number {
      const count = open.size;
      for (const socket of open) socket.destroy();
      return count;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
};

describe.runIf(existsSync(CHROMIUM))("EventSource in chromium", () => {
  let system: System;
  let browser: Browser;
  beforeAll(async () => {
    system = await startSystem({ watermarkMs: 500 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  });
  afterAll(async () => {
    await browser?.close();
    await system?.close();
  });

  it("receives every event once, in order, across connections cut under it", async () => {
    const partner = await system.seed(1);
    const auth = { authorization: `Bearer ${partner.backend.secret}` };
    const createOrder = async () => {
      const created = await fetchJson(`${system.apiUrl}/v1/orders`, {
        method: "POST",
        headers: auth,
        body: { shop_id: partner.shops[0], items: [{ sku: "mocha", quantity: 2 }] },
      });
      expect(created.status).toBe(201);
    };
    for (let i = 0; i < 3; i++) await createOrder();
    const proxy = await startCuttingProxy(system.running.ports.http);
    const origin = `http://127.0.0.1:${proxy.port}`;
    const { body } = await fetchJson<{ ticket: string }>(`${system.apiUrl}/v1/events/stream/tickets`, {
      method: "POST",
      headers: auth,
    });

    const page = await browser.newPage();
    await page.goto(`${origin}/healthz`);
    await page.evaluate(
      (url) => {
        const seen: Seen[] = [];
        const opened: number[] = [];
        const { EventSource } = globalThis as unknown as { EventSource: BrowserEventSource };
        const source = new EventSource(url);
        source.onopen = () => opened.push(Date.now());
        source.onmessage = (message) =>
          seen.push({ seq: JSON.parse(message.data).seq, lastEventId: message.lastEventId });
        Object.assign(globalThis, { seen, opened });
      },
      `/v1/events/stream?ticket=${encodeURIComponent(body.ticket)}`,
    );
    const seen = () => page.evaluate(() => (globalThis as unknown as { seen: Seen[] }).seen);
    const opened = () => page.evaluate(() => (globalThis as unknown as { opened: number[] }).opened.length);

    await waitFor("the history in the page", async () => (await seen()).length === 3);
    for (let round = 0; round < 3; round++) {
      expect(proxy.cut()).toBeGreaterThan(0);
      // Committed while the browser is cut off: it must come with the reconnect.
      await createOrder();
      await createOrder();
      await waitFor(`the reconnect after cut ${round + 1}`, async () => (await opened()) === round + 2);
    }
    await waitFor("every event in the page", async () => (await seen()).length >= 9);
    const events = await seen();
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(events.map((e) => e.lastEventId)).toEqual(["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    await page.close();
    await proxy.close();
  });
});
