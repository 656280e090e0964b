/**
 * GET /v1/events/stream with a plain HTTP client, against the whole system
 * (API, broker, bridge) on a real database: the history then live events,
 * the cursor heartbeat, Last-Event-ID, scope, 410, the per-partner cap,
 * revocation, and tickets for EventSource.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useCleanups } from "../support/cleanups.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import { fetchJson } from "../support/http.ts";
import { SYSTEM_ADMIN_TOKEN, type System, startSystem } from "../support/system.ts";
import { waitFor } from "../support/wait.ts";
import { openSse, type SseClient } from "./sse-client.ts";

const MAX_STREAMS = 3;
const cleanup = useCleanups();

describe("GET /v1/events/stream", () => {
  let system: System;
  beforeAll(async () => {
    system = await startSystem({
      watermarkMs: 200,
      env: { BREWCAST_SSE_MAX_STREAMS_PER_PARTNER: String(MAX_STREAMS) },
    });
  });
  afterAll(async () => system?.close());

  const auth = (secret: string) => ({ authorization: `Bearer ${secret}` });
  const createOrder = async (partner: SeededPartner, shop = partner.shops[0]!) => {
    const created = await fetchJson<{ id: string; last_seq: number }>(`${system.apiUrl}/v1/orders`, {
      method: "POST",
      headers: auth(partner.backend.secret),
      body: { shop_id: shop, items: [{ sku: "latte", quantity: 1 }] },
    });
    expect(created.status).toBe(201);
    return created.body;
  };
  const history = async (partner: SeededPartner, query = "") =>
    (
      await fetchJson<{ events: { seq: number }[] }>(`${system.apiUrl}/v1/events?limit=1000${query}`, {
        headers: auth(partner.backend.secret),
      })
    ).body.events;
  const open = async (path: string, headers: Record<string, string>): Promise<SseClient> => {
    const client = await openSse(`${system.apiUrl}${path}`, headers);
    cleanup(async () => client.close());
    return client;
  };
  const seqsOf = (client: SseClient) => client.events().map((event) => event.seq);

  it("sends the history, then each event as it is committed: id is the seq, data the event GET /v1/events returns", async () => {
    const partner = await system.seed(2);
    for (let i = 0; i < 3; i++) await createOrder(partner, partner.shops[i % 2]);
    const client = await open("/v1/events/stream", auth(partner.backend.secret));
    expect(client.status).toBe(200);
    expect(client.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    expect(client.headers["cache-control"]).toBe("no-cache, no-transform");
    expect(client.headers["x-accel-buffering"]).toBe("no");
    await waitFor("the history", () => client.events().length === 3);

    const order = await createOrder(partner);
    await fetchJson(`${system.apiUrl}/v1/orders/${order.id}`, {
      method: "PATCH",
      headers: auth(partner.backend.secret),
      body: { status: "accepted" },
    });
    await createOrder(partner, partner.shops[1]);
    await waitFor("the live events", () => client.events().length === 6);

    expect(client.events()).toEqual(await history(partner));
    expect(seqsOf(client)).toEqual([1, 2, 3, 4, 5, 6]);
    const ids = client.messages.filter((m) => m.event === "message").map((m) => m.id);
    expect(ids).toEqual(["1", "2", "3", "4", "5", "6"]);
  });

  it("writes the scope's head as `event: cursor` once caught up and again every watermark interval", async () => {
    const partner = await system.seed(1);
    await createOrder(partner);
    await createOrder(partner);
    const client = await open("/v1/events/stream?after=1", auth(partner.backend.secret));
    const cursors = () => client.messages.filter((m) => m.event === "cursor");
    await waitFor("three heartbeats", () => cursors().length >= 3, 5_000);
    const cursor = JSON.parse(cursors()[0]!.data) as { seq: number; epoch: string };
    expect(cursor.seq).toBe(2);
    expect(cursor.epoch).toMatch(/^[0-9a-f-]{36}$/);
    expect(cursors()[0]!.id).toBe("2");
    // The cursor comes after the event it vouches for.
    expect(client.messages.findIndex((m) => m.event === "cursor")).toBeGreaterThan(
      client.messages.findIndex((m) => m.id === "2" && m.event === "message"),
    );
  });

  it("reconnecting with Last-Event-ID resumes after it, over `after`: nothing lost, nothing repeated", async () => {
    const partner = await system.seed(1);
    for (let i = 0; i < 3; i++) await createOrder(partner);
    const first = await open("/v1/events/stream", auth(partner.backend.secret));
    await waitFor("three events", () => first.events().length === 3);
    first.close();
    await createOrder(partner);
    await createOrder(partner);
    const again = await open("/v1/events/stream?after=0", {
      ...auth(partner.backend.secret),
      "last-event-id": "3",
    });
    await waitFor("the two missed events", () => again.events().length === 2);
    expect(seqsOf(again)).toEqual([4, 5]);
    const bad = await fetchJson<{ code: string }>(`${system.apiUrl}/v1/events/stream`, {
      headers: { ...auth(partner.backend.secret), "last-event-id": "x1" },
    });
    expect(bad.status).toBe(400);
  });

  it("has the scope of GET /v1/events: a device sees its shop only, another shop is 404, no credential 401", async () => {
    const partner = await system.seed(2);
    for (let i = 0; i < 4; i++) await createOrder(partner, partner.shops[i % 2]);
    const device = partner.devices[1]!;
    const client = await open("/v1/events/stream", auth(device.secret));
    await waitFor("the shop's events", () => client.events().length === 2);
    expect(client.events()).toEqual(await history(partner, `&shop_id=${partner.shops[1]}`));

    const other = await fetchJson<{ code: string }>(
      `${system.apiUrl}/v1/events/stream?shop_id=${partner.shops[0]}`,
      { headers: auth(device.secret) },
    );
    expect([other.status, other.body.code]).toEqual([404, "NOT_FOUND"]);
    const anonymous = await fetchJson<{ code: string }>(`${system.apiUrl}/v1/events/stream`);
    expect(anonymous.status).toBe(401);
  });

  it("answers 410 CURSOR_EXPIRED before the stream starts when the position is past retention", async () => {
    const partner = await system.seed(1);
    for (let i = 0; i < 3; i++) await createOrder(partner);
    await system.running.db.query("UPDATE partners SET pruned_through_seq = 2 WHERE id = $1", [partner.id]);
    const expired = await fetchJson<{ code: string }>(`${system.apiUrl}/v1/events/stream?after=1`, {
      headers: auth(partner.backend.secret),
    });
    expect([expired.status, expired.body.code]).toEqual([410, "CURSOR_EXPIRED"]);
  });

  it("refuses a partner's stream beyond BREWCAST_SSE_MAX_STREAMS_PER_PARTNER with 429 and Retry-After; a closed one frees its place", async () => {
    const partner = await system.seed(1);
    const streams: SseClient[] = [];
    for (let i = 0; i < MAX_STREAMS; i++)
      streams.push(await open("/v1/events/stream", auth(partner.backend.secret)));
    expect(streams.map((s) => s.status)).toEqual(Array(MAX_STREAMS).fill(200));
    const refused = await fetchJson<{ code: string }>(`${system.apiUrl}/v1/events/stream`, {
      headers: auth(partner.backend.secret),
    });
    expect([refused.status, refused.body.code]).toEqual([429, "RATE_LIMITED"]);
    expect(refused.headers.get("retry-after")).toBe("10");
    // Another partner is not counted against this one.
    const other = await system.seed(1);
    expect((await open("/v1/events/stream", auth(other.backend.secret))).status).toBe(200);

    streams[0]!.close();
    await waitFor("the place freed", async () => {
      const next = await openSse(`${system.apiUrl}/v1/events/stream`, auth(partner.backend.secret));
      cleanup(async () => next.close());
      return next.status === 200;
    });
  });

  it("ends the stream of a credential revoked while it reads, and of a suspended partner", async () => {
    const partner = await system.seed(1);
    const device = await open("/v1/events/stream", auth(partner.devices[0]!.secret));
    const backend = await open("/v1/events/stream", auth(partner.backend.secret));
    const admin = { authorization: `Bearer ${SYSTEM_ADMIN_TOKEN}` };
    const revoked = await fetchJson(`${system.apiUrl}/admin/v1/credentials/${partner.devices[0]!.id}`, {
      method: "DELETE",
      headers: admin,
    });
    expect(revoked.status).toBe(200);
    await device.ended;
    // The backend's stream of the same partner goes on.
    await createOrder(partner);
    await waitFor("the backend's event", () => backend.events().length === 1);

    await fetchJson(`${system.apiUrl}/admin/v1/partners/${partner.id}/suspend`, {
      method: "POST",
      headers: admin,
    });
    await backend.ended;
    const refused = await fetchJson(`${system.apiUrl}/v1/events/stream`, {
      headers: auth(partner.backend.secret),
    });
    expect(refused.status).toBe(403);
  });

  it("opens with a ticket instead of Authorization (EventSource cannot send one); an altered ticket is 401", async () => {
    const partner = await system.seed(2);
    await createOrder(partner, partner.shops[0]);
    await createOrder(partner, partner.shops[1]);
    const issued = await fetchJson<{ ticket: string; expires_at: string }>(
      `${system.apiUrl}/v1/events/stream/tickets`,
      { method: "POST", headers: auth(partner.devices[0]!.secret) },
    );
    expect(issued.status).toBe(201);
    expect(Date.parse(issued.body.expires_at)).toBeGreaterThan(Date.now());
    const client = await open(`/v1/events/stream?ticket=${encodeURIComponent(issued.body.ticket)}`, {});
    expect(client.status).toBe(200);
    // The device's scope: its shop's event only.
    await waitFor("the shop's event", () => client.events().length === 1);
    expect(client.events()[0]).toMatchObject({ seq: 1, shop_id: partner.shops[0] });

    const altered = `${issued.body.ticket.slice(0, -2)}AA`;
    const forged = await fetchJson<{ code: string }>(
      `${system.apiUrl}/v1/events/stream?ticket=${encodeURIComponent(altered)}`,
    );
    expect([forged.status, forged.body.code]).toEqual([401, "UNAUTHENTICATED"]);
    // A ticket opens the stream only.
    const elsewhere = await fetchJson(
      `${system.apiUrl}/v1/events?ticket=${encodeURIComponent(issued.body.ticket)}`,
    );
    expect(elsewhere.status).toBe(401);
  });
});
