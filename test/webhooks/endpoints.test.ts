/**
 * Webhook endpoints over real HTTP: brewcast listening on a free port, real
 * local receivers (node:http). CRUD and scope, the secret shown once, the
 * verification challenge, confirmation, a URL change, rotation, replay,
 * attempts and audit, and the SSRF guard on the API.
 */
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { WEBHOOK_LIMITS } from "../../src/domain/webhooks.ts";
import { useCleanups } from "../support/cleanups.ts";
import { seedPartner } from "../support/fixtures.ts";
import { fetchJson, listenApp } from "../support/http.ts";
import { createTestApp, TEST_ADMIN_TOKEN, type TestApp, type TestAppOptions } from "../support/test-app.ts";
import { echoChallenge, startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.ts";

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

const cleanup = useCleanups();

const LOCAL = { webhookAllowNets: "127.0.0.0/8" };

const start = async (options: TestAppOptions = LOCAL) => {
  const t: TestApp = await createTestApp(undefined, options);
  cleanup(() => t.close());
  const base = await listenApp(t.app);
  const partner = await seedPartner(t.db);
  const api = (method: string, path: string, secret: string | null, body?: unknown) =>
    fetchJson<Json>(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${secret ?? TEST_ADMIN_TOKEN}` },
      ...(body === undefined ? {} : { body }),
    });
  const backend = partner.backend.secret;
  return { t, base, partner, api, backend };
};

const receiver = async (handler = echoChallenge): Promise<WebhookReceiver> => {
  const started = await startWebhookReceiver(handler);
  cleanup(() => started.close());
  return started;
};

describe("webhook endpoints", { timeout: 60_000 }, () => {
  it("are created pending, with a secret shown once, and kept per partner", async () => {
    const { t, api, backend, partner } = await start();
    const hook = await receiver();
    const created = await api("POST", "/v1/webhooks", backend, {
      url: hook.url,
      shop_id: partner.shops[0],
      types: ["order.created"],
      description: "orders to the kitchen",
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: "pending", url: hook.url, shop_id: partner.shops[0] });
    expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const id = created.body.id as string;

    const got = await api("GET", `/v1/webhooks/${id}`, backend);
    expect(got.status).toBe(200);
    expect(got.body.secret).toBeUndefined();
    expect(JSON.stringify((await api("GET", "/v1/webhooks", backend)).body)).not.toContain("whsec_");
    expect((await api("GET", "/v1/webhooks", backend)).body.webhooks).toHaveLength(1);

    // Another partner sees nothing of it; a device credential may not use the routes at all.
    const other = await seedPartner(t.db);
    expect((await api("GET", `/v1/webhooks/${id}`, other.backend.secret)).status).toBe(404);
    expect((await api("DELETE", `/v1/webhooks/${id}`, other.backend.secret)).status).toBe(404);
    const device = await api("GET", "/v1/webhooks", partner.devices[0]!.secret);
    expect(device.status).toBe(403);
    expect(device.body.code).toBe("FORBIDDEN");

    const patched = await api("PATCH", `/v1/webhooks/${id}`, backend, { description: "changed", types: [] });
    expect(patched.body).toMatchObject({ description: "changed", types: [] });
    expect((await api("PATCH", `/v1/webhooks/${id}`, backend, { shop_id: "nope" })).status).toBe(404);
    expect((await api("PATCH", `/v1/webhooks/${id}`, backend, {})).status).toBe(400);

    expect((await api("DELETE", `/v1/webhooks/${id}`, backend)).status).toBe(200);
    expect((await api("GET", `/v1/webhooks/${id}`, backend)).status).toBe(404);
    const audit = await api("GET", `/admin/v1/webhooks/${id}/audit`, null);
    expect(audit.body.audit.map((entry: Json) => entry.action)).toContain("delete");
  });

  it("are limited per partner, and in URL and description length", async () => {
    const { api, backend } = await start();
    const hook = await receiver();
    for (let i = 0; i < WEBHOOK_LIMITS.endpointsPerPartner; i++) {
      expect((await api("POST", "/v1/webhooks", backend, { url: `${hook.url}/${i}` })).status).toBe(201);
    }
    const over = await api("POST", "/v1/webhooks", backend, { url: hook.url });
    expect(over.status).toBe(409);
    expect(over.body.code).toBe("WEBHOOK_LIMIT_REACHED");
    const long = await api("POST", "/v1/webhooks", backend, { url: `${hook.url}?${"a".repeat(2100)}` });
    expect(long.status).toBe(400);
    const wordy = await api("POST", "/v1/webhooks", backend, { url: hook.url, description: "x".repeat(501) });
    expect(wordy.status).toBe(400);
  });

  it("verify: a URL that echoes the signed challenge is verified; one that does not is not", async () => {
    const { t, api, backend } = await start();
    const good = await receiver();
    const created = await api("POST", "/v1/webhooks", backend, { url: good.url });
    await t.webhooks.verifier.settle();
    // The background verification request: signed like a delivery, with the endpoint's secret.
    expect(good.requests).toHaveLength(1);
    const challenge = good.requests[0]!;
    const payload = new Webhook(created.body.secret).verify(
      challenge.body,
      challenge.headers as never,
    ) as Json;
    expect(payload).toMatchObject({ type: "webhook.verification" });
    expect(payload.challenge).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const after = await api("GET", `/v1/webhooks/${created.body.id}`, backend);
    expect(after.body.verified_at).not.toBeNull();
    expect(after.body.status).toBe("pending"); // not confirmed yet

    const silent = await receiver((_request, response) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end('{"ok":true}');
    });
    const bad = await api("POST", "/v1/webhooks", backend, { url: silent.url });
    const verify = await api("POST", `/v1/webhooks/${bad.body.id}/verify`, backend);
    expect(verify.status).toBe(200);
    expect(verify.body.verified).toBe(false);
    expect(verify.body.attempt).toMatchObject({ kind: "verification", status: 200 });
    expect(verify.body.attempt.error).toMatch(/did not echo/);
    expect(verify.body.webhook.verified_at).toBeNull();
    await t.webhooks.verifier.settle();
    const attempts = await api("GET", `/v1/webhooks/${bad.body.id}/attempts`, backend);
    expect(attempts.body.attempts.length).toBeGreaterThanOrEqual(1);
    expect(attempts.body.attempts.every((a: Json) => a.kind === "verification" && a.seq === null)).toBe(true);
  });

  it("deliver only once verified and confirmed; a URL change without confirmation is not delivered to", async () => {
    const { t, api, backend, partner } = await start();
    const first = await receiver();
    const created = await api("POST", "/v1/webhooks", backend, { url: first.url });
    const id = created.body.id as string;
    await t.webhooks.verifier.settle();
    expect(await t.webhooks.store.listDeliverable(partner.id)).toEqual([]);

    const confirmed = await api("POST", `/admin/v1/webhooks/${id}/confirm`, null, { url: first.url });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body.status).toBe("active");
    expect((await t.webhooks.store.listDeliverable(partner.id)).map((e) => e.url)).toEqual([first.url]);

    // The partner's secret (or a thief holding it) points the stream elsewhere: pending, not delivered.
    const second = await receiver();
    const moved = await api("PATCH", `/v1/webhooks/${id}`, backend, { url: second.url });
    expect(moved.body).toMatchObject({ status: "pending", verified_at: null, confirmed_at: null });
    await t.webhooks.verifier.settle();
    expect(second.requests).toHaveLength(1); // the challenge only
    const verified = await api("GET", `/v1/webhooks/${id}`, backend);
    expect(verified.body.verified_at).not.toBeNull();
    expect(verified.body.status).toBe("pending");
    expect(await t.webhooks.store.listDeliverable(partner.id)).toEqual([]);

    // An operator who checked the old URL cannot confirm the new one by mistake.
    const stale = await api("POST", `/admin/v1/webhooks/${id}/confirm`, null, { url: first.url });
    expect(stale.status).toBe(409);
    expect(stale.body.code).toBe("WEBHOOK_URL_MISMATCH");
    const ok = await api("POST", `/admin/v1/webhooks/${id}/confirm`, null, { url: second.url });
    expect(ok.body.status).toBe("active");

    // Disable and enable (operator), and the audit of it all.
    expect(
      (await api("POST", `/admin/v1/webhooks/${id}/disable`, null, { reason: "abuse" })).body.status,
    ).toBe("disabled");
    expect(await t.webhooks.store.listDeliverable(partner.id)).toEqual([]);
    expect((await api("POST", `/admin/v1/webhooks/${id}/enable`, null, { reason: "ok" })).body.status).toBe(
      "active",
    );
    const audit = (await api("GET", `/admin/v1/webhooks/${id}/audit`, null)).body.audit as Json[];
    expect(audit.map((entry) => [entry.actor, entry.action])).toEqual([
      [partner.backend.id, "create"],
      ["verification", "verified"],
      ["admin", "confirm"],
      [partner.backend.id, "update"],
      ["verification", "verified"],
      ["admin", "confirm"],
      ["admin", "set_status"],
      ["admin", "set_status"],
    ]);
    expect(audit[3]).toMatchObject({ old_url: first.url, new_url: second.url });
    const listed = await api("GET", `/admin/v1/partners/${partner.id}/webhooks`, null);
    expect(listed.body.webhooks.map((e: Json) => e.id)).toEqual([id]);
  });

  it("rotation: during the overlap each request carries both signatures, each verifies with its secret", async () => {
    const { t, api, backend } = await start();
    const hook = await receiver();
    const created = await api("POST", "/v1/webhooks", backend, { url: hook.url });
    const id = created.body.id as string;
    const rotated = await api("POST", `/v1/webhooks/${id}/rotate-secret`, backend);
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).not.toBe(created.body.secret);
    expect(Date.parse(rotated.body.previous_secret_expires_at) - Date.now()).toBeGreaterThan(86_000_000);

    await t.webhooks.verifier.settle();
    hook.requests.length = 0;
    await api("POST", `/v1/webhooks/${id}/verify`, backend);
    const request = hook.requests[0]!;
    const signatures = String(request.headers["webhook-signature"]).split(" ");
    expect(signatures).toHaveLength(2);
    expect(signatures.every((s) => s.startsWith("v1,"))).toBe(true);
    for (const secret of [created.body.secret, rotated.body.secret]) {
      expect(new Webhook(secret).verify(request.body, request.headers as never)).toMatchObject({
        type: "webhook.verification",
      });
    }
    // Past the overlap the old secret no longer signs.
    const later = await t.webhooks.store.target(id, new Date(Date.now() + 86_401_000));
    expect(later.secrets).toEqual([rotated.body.secret]);
    expect((await t.webhooks.store.target(id)).secrets).toEqual([rotated.body.secret, created.body.secret]);
  });

  it("replay moves the position back, never forward, and not past retention (410)", async () => {
    const { t, api, backend, partner } = await start();
    const shop = partner.shops[0]!;
    for (let i = 0; i < 3; i++) {
      await api("POST", "/v1/orders", backend, { shop_id: shop, items: [{ sku: "latte", quantity: 1 }] });
    }
    const hook = await receiver();
    const created = await api("POST", "/v1/webhooks", backend, { url: hook.url });
    const id = created.body.id as string;
    expect(created.body.position).toBe(3); // owed what comes after its creation
    const replayed = await api("POST", `/v1/webhooks/${id}/replay`, backend, { from_seq: 2 });
    expect(replayed.status).toBe(200);
    expect(replayed.body.position).toBe(1);
    expect(await t.webhooks.store.readPosition(id)).toEqual({ position: 1, generation: 1 });
    const forward = await api("POST", `/v1/webhooks/${id}/replay`, backend, { from_seq: 5 });
    expect(forward.status).toBe(400);
    expect(forward.body.errors[0].field).toBe("body.from_seq");

    // The delivery loop's compare-and-set: a commit from before the replay does not land.
    expect(await t.webhooks.store.commitPosition(id, { position: 3, generation: 0 }, 4)).toBe(false);
    expect(await t.webhooks.store.commitPosition(id, { position: 1, generation: 1 }, 3)).toBe(true);

    await t.db.query("UPDATE partners SET pruned_through_seq = 2 WHERE id = $1", [partner.id]);
    const expired = await api("POST", `/v1/webhooks/${id}/replay`, backend, { from_seq: 2 });
    expect(expired.status).toBe(410);
    expect(expired.body.code).toBe("CURSOR_EXPIRED");
  });

  it("keep a bounded attempts history", async () => {
    const { t, api, backend } = await start();
    const hook = await receiver();
    const created = await api("POST", "/v1/webhooks", backend, { url: hook.url });
    await t.webhooks.verifier.settle();
    const id = created.body.id as string;
    for (let seq = 1; seq <= WEBHOOK_LIMITS.attemptsKept + 5; seq++) {
      await t.webhooks.store.recordAttempt(id, {
        kind: "delivery",
        webhookId: `evt_x_${seq}`,
        seq,
        status: 500,
        latencyMs: 3,
        error: "HTTP 500",
      });
    }
    const attempts = (await api("GET", `/v1/webhooks/${id}/attempts`, backend)).body.attempts as Json[];
    expect(attempts).toHaveLength(WEBHOOK_LIMITS.attemptsKept);
    expect(attempts[0]).toMatchObject({
      seq: WEBHOOK_LIMITS.attemptsKept + 5,
      status: 500,
      error: "HTTP 500",
    });
  });

  it("record the delivery loop's grouped writes: attempts and positions in one statement, a stale move refused, trims", async () => {
    const { t, api, backend, partner } = await start();
    const hook = await receiver();
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      ids.push((await api("POST", "/v1/webhooks", backend, { url: hook.url })).body.id as string);
    }
    const [a, b] = ids as [string, string];
    await t.webhooks.verifier.settle();
    const store = t.webhooks.store;
    const base = await store.readPosition(a);
    await store.replay(partner.id, b, "admin", base.position + 1); // b: generation 1 now
    const attempt = (seq: number) => ({
      kind: "delivery" as const,
      webhookId: `evt_x_${seq}`,
      seq,
      status: 204,
      latencyMs: 2,
      error: null,
      at: new Date(Date.now() - 60_000),
    });
    const total = WEBHOOK_LIMITS.attemptsKept + 20;
    const moved = await store.recordDeliveries([
      {
        endpointId: a,
        attempts: Array.from({ length: total }, (_, i) => attempt(i + 1)),
        move: { expected: base, next: base.position + 7 },
      },
      // Read before the replay (generation 0): refused, its attempts kept all the same.
      { endpointId: b, attempts: [attempt(1)], move: { expected: { ...base, generation: 0 }, next: 9 } },
    ]);
    expect([...moved]).toEqual([a]);
    expect(await store.readPosition(a)).toEqual({ position: base.position + 7, generation: 0 });
    expect(await store.readPosition(b)).toEqual({ position: base.position, generation: 1 });
    const listed = await store.listAttempts(null, a);
    expect(listed).toHaveLength(WEBHOOK_LIMITS.attemptsKept);
    expect(listed[0]).toMatchObject({ seq: total, status: 204, webhook_id: `evt_x_${total}` });
    expect(Date.parse(listed[0]!.at)).toBeLessThan(Date.now() - 30_000); // the attempt's own time
    const ofB = await store.listAttempts(null, b);
    expect(ofB.filter((x) => x.kind === "delivery")).toMatchObject([{ seq: 1 }]);
    const count = async () =>
      (
        await t.db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM webhook_attempts WHERE endpoint_id = $1",
          [a],
        )
      )[0]!.n;
    expect(await count()).toBeGreaterThanOrEqual(total); // trimmed now and then, not per write
    await store.trimAttempts([a, b]);
    expect(await count()).toBe(WEBHOOK_LIMITS.attemptsKept);
  });

  it("refuse URLs the SSRF guard refuses, naming body.url", async () => {
    const { api, backend } = await start({});
    const hook = await receiver();
    for (const url of [
      "https://127.0.0.1/hook",
      "https://10.0.0.1/hook",
      "https://169.254.169.254/latest/meta-data/",
      "https://[::ffff:127.0.0.1]/hook",
      "https://localhost/hook",
      hook.url, // plain http to loopback, with no allowed network
    ]) {
      const refused = await api("POST", "/v1/webhooks", backend, { url });
      expect(refused.status, url).toBe(400);
      expect(refused.body.errors, url).toEqual([{ field: "body.url", message: expect.any(String) }]);
    }
    expect(hook.requests).toHaveLength(0);
  });
});
