/**
 * The webhook sender against real local receivers: signed requests the
 * standardwebhooks library verifies, the connection made to the address the
 * guard checked (no second lookup), no redirects, a capped response body, a
 * deadline, and nothing sent to a refused URL.
 */
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { buildWebhookMessageId } from "../../src/domain/webhooks.ts";
import { newWebhookSecret } from "../../src/store/webhooks.ts";
import { createAddressGuard, parseAllowNets, type Resolve } from "../../src/webhooks/address-guard.ts";
import { createWebhookSender, DEFAULT_MAX_RESPONSE_BYTES } from "../../src/webhooks/sender.ts";
import { useCleanups } from "../support/cleanups.ts";
import { type ReceiverHandler, startWebhookReceiver } from "../support/webhook-receiver.ts";

const cleanup = useCleanups();

const sender = (options: { allowNets?: string; resolve?: Resolve; timeoutMs?: number } = {}) => {
  const created = createWebhookSender({
    guard: createAddressGuard({
      allowNets: parseAllowNets(options.allowNets ?? "127.0.0.0/8"),
      ...(options.resolve ? { resolve: options.resolve } : {}),
    }),
    timeoutMs: options.timeoutMs ?? 5_000,
  });
  cleanup(() => created.close());
  return created;
};

const receiver = async (handler?: ReceiverHandler) => {
  const started = await startWebhookReceiver(handler);
  cleanup(() => started.close());
  return started;
};

const event = (seq: number) =>
  JSON.stringify({ seq, type: "order.created", partner_id: "p-1", shop_id: "shop-1" });

describe("sendWebhook", { timeout: 30_000 }, () => {
  it("POSTs the body signed per Standard Webhooks, with a webhook-id from partner and seq", async () => {
    const hook = await receiver();
    const secret = newWebhookSecret();
    const message = { id: buildWebhookMessageId("p-1", 42), timestamp: new Date(), body: event(42) };
    const result = await sender().sendWebhook({ url: hook.url, secrets: [secret] }, message);
    expect(result).toMatchObject({ ok: true, status: 204, refused: false });
    expect(result.error).toBeUndefined();
    const [request] = hook.requests;
    expect(request!.method).toBe("POST");
    expect(request!.headers["webhook-id"]).toBe("evt_p-1_42");
    expect(request!.headers["content-type"]).toBe("application/json");
    expect(request!.body).toBe(message.body);
    expect(new Webhook(secret).verify(request!.body, request!.headers as never)).toMatchObject({ seq: 42 });
    expect(() => new Webhook(newWebhookSecret()).verify(request!.body, request!.headers as never)).toThrow();
  });

  it("connects to the checked address: a name resolved once by the guard, never by the system", async () => {
    const hook = await receiver();
    const lookups: string[] = [];
    const resolve: Resolve = async (hostname) => {
      lookups.push(hostname);
      return [{ address: "127.0.0.1", family: 4 }];
    };
    // `hooks.brewcast-test.invalid` resolves nowhere: only the guard's answer can have reached it.
    const url = `http://hooks.brewcast-test.invalid:${hook.port}/hook`;
    const result = await sender({ resolve }).sendWebhook(
      { url, secrets: [newWebhookSecret()] },
      { id: "evt_p_1", timestamp: new Date(), body: event(1) },
    );
    expect(result.status).toBe(204);
    expect(lookups).toEqual(["hooks.brewcast-test.invalid"]);
    expect(hook.requests[0]!.headers.host).toBe(`hooks.brewcast-test.invalid:${hook.port}`);
  });

  it("does not follow a redirect, even from an allowed network, to a private address", async () => {
    const inner = await receiver();
    const outer = await receiver((_request, response) => {
      response.writeHead(302, { location: inner.url });
      response.end();
    });
    const metadata = await receiver((_request, response) => {
      response.writeHead(307, { location: "http://169.254.169.254/latest/meta-data/" });
      response.end();
    });
    const send = sender();
    for (const hook of [outer, metadata]) {
      const result = await send.sendWebhook(
        { url: hook.url, secrets: [newWebhookSecret()] },
        { id: "evt_p_1", timestamp: new Date(), body: event(1) },
      );
      expect(result.ok).toBe(false);
      expect(result.error).toMatch(/redirect 30[27] not followed/);
    }
    expect(inner.requests).toHaveLength(0);
  });

  it("reads at most a few KiB of the answer", async () => {
    const big = "x".repeat(1024 * 1024);
    const hook = await receiver((_request, response) => {
      response.writeHead(200, { "content-type": "text/plain" });
      response.end(big);
    });
    const result = await sender().sendWebhook(
      { url: hook.url, secrets: [newWebhookSecret()] },
      { id: "evt_p_1", timestamp: new Date(), body: event(1) },
    );
    expect(result.ok).toBe(true);
    expect(result.body.length).toBe(DEFAULT_MAX_RESPONSE_BYTES);
  });

  it("gives up after its deadline", async () => {
    const hook = await receiver(() => {
      // never answers
    });
    const result = await sender({ timeoutMs: 300 }).sendWebhook(
      { url: hook.url, secrets: [newWebhookSecret()] },
      { id: "evt_p_1", timestamp: new Date(), body: event(1) },
    );
    expect(result).toMatchObject({ ok: false, status: null });
    expect(result.error).toMatch(/timed out|Timeout/i);
    expect(result.latencyMs).toBeLessThan(3_000);
  });

  it("sends nothing to a refused URL: http outside the allowed networks, a private name", async () => {
    const hook = await receiver();
    const strict = sender({ allowNets: "" });
    for (const url of [hook.url, `https://localhost:${hook.port}/hook`, "https://[::ffff:127.0.0.1]/hook"]) {
      const result = await strict.sendWebhook(
        { url, secrets: [newWebhookSecret()] },
        { id: "evt_p_1", timestamp: new Date(), body: event(1) },
      );
      expect(result, url).toMatchObject({ ok: false, status: null, refused: true });
    }
    expect(hook.requests).toHaveLength(0);
  });

  it("reports a receiver's error status and 410 as they are (the loop decides what follows)", async () => {
    const hook = await receiver((_request, response) => {
      response.writeHead(410);
      response.end();
    });
    const result = await sender().sendWebhook(
      { url: hook.url, secrets: [newWebhookSecret()] },
      { id: "evt_p_1", timestamp: new Date(), body: event(1) },
    );
    expect(result).toMatchObject({ ok: false, status: 410, error: "HTTP 410" });
  });
});
