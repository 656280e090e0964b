/**
 * Webhook delivery over real HTTP: the whole system (startSystem) POSTing to
 * real local receivers (node:http). A flaky, slow, sometimes-down receiver
 * still gets every event, in seq order, signed (verified with the
 * standardwebhooks library); 410 disables; a URL change without confirmation
 * is sent nothing; a replay re-delivers; retention waits for an endpoint.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import mqtt from "mqtt";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { pruneHistory } from "../../src/store/retention.ts";
import { useCleanups } from "../support/cleanups.ts";
import { fetchJson } from "../support/http.ts";
import { SYSTEM_ADMIN_TOKEN, type System, startSystem } from "../support/system.ts";
import { waitFor } from "../support/wait.ts";

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

const cleanup = useCleanups();

const FAST_RETRIES = {
  BREWCAST_WEBHOOK_ALLOW_NETS: "127.0.0.0/8",
  BREWCAST_WEBHOOK_RETRY_INITIAL_MS: "20",
  BREWCAST_WEBHOOK_RETRY_MAX_MS: "200",
  BREWCAST_WEBHOOK_TIMEOUT_MS: "1000",
};

interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  seq: number;
  /** performance.now() at arrival. */
  at: number;
}

type Answer = (delivery: Delivery, response: ServerResponse) => void;

/** A receiver that can be taken down (connections refused) and brought back on the same port. */
const startReceiver = async (answer: Answer = (_d, r) => r.writeHead(204).end()) => {
  const deliveries: Delivery[] = [];
  let current = answer;
  let port = 0;
  let server: Server | undefined;
  const up = async () => {
    const started = createServer((incoming, response) => {
      const chunks: Buffer[] = [];
      incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
      incoming.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const parsed = JSON.parse(body) as { type?: string; challenge?: string; seq?: number };
        if (parsed.type === "webhook.verification") {
          response.writeHead(200, { "content-type": "application/json" });
          response.end(JSON.stringify({ challenge: parsed.challenge }));
          return;
        }
        const delivery = { headers: incoming.headers, body, seq: parsed.seq ?? -1, at: performance.now() };
        deliveries.push(delivery);
        current(delivery, response);
      });
    });
    await new Promise<void>((resolve) => started.listen(port, "127.0.0.1", resolve));
    port = (started.address() as AddressInfo).port;
    server = started;
  };
  const down = async () => {
    const stopping = server;
    server = undefined;
    if (!stopping) return;
    stopping.closeAllConnections();
    await new Promise<void>((resolve) => stopping.close(() => resolve()));
  };
  await up();
  cleanup(down);
  return {
    get url() {
      return `http://127.0.0.1:${port}/hook`;
    },
    deliveries,
    answer(next: Answer) {
      current = next;
    },
    up,
    down,
  };
};
type Receiver = Awaited<ReturnType<typeof startReceiver>>;

const start = async (env: Record<string, string> = {}) => {
  const system: System = await startSystem({ env: { ...FAST_RETRIES, ...env } });
  cleanup(() => system.close());
  const partner = await system.seed(2);
  const api = (method: string, path: string, secret: string | null, body?: unknown) =>
    fetchJson<Json>(`${system.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${secret ?? SYSTEM_ADMIN_TOKEN}` },
      ...(body === undefined ? {} : { body }),
    });
  const backend = partner.backend.secret;
  /** An endpoint the receiver verified and an operator confirmed: active. */
  const endpoint = async (receiver: Receiver, body: Record<string, unknown> = {}) => {
    const created = await api("POST", "/v1/webhooks", backend, { url: receiver.url, ...body });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    await waitFor("the endpoint verified", async () => {
      const got = await api("GET", `/v1/webhooks/${id}`, backend);
      return got.body.verified_at !== null;
    });
    const confirmed = await api("POST", `/admin/v1/webhooks/${id}/confirm`, null, { url: receiver.url });
    expect(confirmed.body.status).toBe("active");
    return { id, secret: created.body.secret as string };
  };
  let orders = 0;
  const order = async (shop = partner.shops[0]) => {
    const created = await api("POST", "/v1/orders", backend, {
      shop_id: shop,
      items: [{ sku: `latte-${++orders}`, quantity: 1 }],
    });
    expect(created.status).toBe(201);
  };
  const headSeq = async () => {
    const [row] = await system.running.db.query<{ head_seq: number }>(
      "SELECT head_seq FROM partners WHERE id = $1",
      [partner.id],
    );
    return row!.head_seq;
  };
  return { system, partner, api, backend, endpoint, order, headSeq };
};

/** Deterministic "random" numbers (mulberry32). */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
};

/** Seqs answered 2xx, and whether arrivals never went back in seq. */
const succeeded = (receiver: Receiver, statusOf: Map<Delivery, number>) =>
  new Set(receiver.deliveries.filter((d) => (statusOf.get(d) ?? 0) < 300).map((d) => d.seq));

/** The partner's status topic, as its back end would watch it: every message, parsed. */
const watchPartnerStatus = async (
  mqttUrl: string,
  partner: { id: string; backend: { id: string; secret: string } },
  clientId: string,
): Promise<Json[]> => {
  const client = await mqtt.connectAsync(mqttUrl, {
    protocolVersion: 4,
    username: partner.backend.id,
    password: partner.backend.secret,
    clientId,
    reconnectPeriod: 0,
  });
  cleanup(() => client.endAsync());
  const statuses: Json[] = [];
  client.on("message", (_topic, payload) => statuses.push(JSON.parse(payload.toString("utf8"))));
  await client.subscribeAsync(`partners/${partner.id}/status`, { qos: 1 });
  return statuses;
};

describe("webhook delivery", { timeout: 120_000 }, () => {
  it("gets every event to a flaky, slow, sometimes-down receiver, in seq order, signed", async () => {
    const { partner, api, backend, endpoint, order, headSeq } = await start();
    const random = seeded(18);
    const statusOf = new Map<Delivery, number>();
    const receiver = await startReceiver((delivery, response) => {
      const roll = random();
      const status = roll < 0.3 ? 500 : 204;
      statusOf.set(delivery, status);
      // Now and then slow: sometimes past the request timeout (1 s), which the sender counts as a failure.
      const delay = random() < 0.1 ? Math.floor(random() * 1_400) : 0;
      setTimeout(() => {
        if (!response.destroyed) response.writeHead(status).end();
      }, delay);
    });
    const { id, secret } = await endpoint(receiver);

    for (let i = 0; i < 15; i++) await order(partner.shops[i % 2]);
    await waitFor("the first events delivered", () => succeeded(receiver, statusOf).size >= 5, 60_000);

    // Down: connections refused while more events are committed.
    await receiver.down();
    for (let i = 0; i < 10; i++) await order();
    await waitFor("attempts refused while down", async () => {
      const attempts = (await api("GET", `/v1/webhooks/${id}/attempts`, backend)).body.attempts as Json[];
      return attempts.filter((a) => a.status === null && a.error).length >= 3;
    });
    await receiver.up();
    for (let i = 0; i < 15; i++) await order(partner.shops[i % 2]);

    const head = await headSeq();
    expect(head).toBe(40);
    await waitFor(
      () => `every seq answered 2xx (have ${[...succeeded(receiver, statusOf)].sort((a, b) => a - b)})`,
      () => succeeded(receiver, statusOf).size === head,
      90_000,
    );
    await waitFor("the position at the head", async () => {
      const got = await api("GET", `/v1/webhooks/${id}`, backend);
      return got.body.position === head && got.body;
    });

    // In seq order: arrivals never go back (a retry repeats the same seq, with the same webhook-id).
    const seqs = receiver.deliveries.map((d) => d.seq);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThanOrEqual(seqs[i - 1]!);
    expect(seqs.length).toBeGreaterThan(head); // some were retried
    const verifier = new Webhook(secret);
    for (const delivery of receiver.deliveries) {
      expect(delivery.headers["webhook-id"]).toBe(`evt_${partner.id}_${delivery.seq}`);
      const verified = verifier.verify(delivery.body, delivery.headers as Record<string, string>) as Json;
      expect(verified.seq).toBe(delivery.seq);
      expect(verified.partner_id).toBe(partner.id);
    }
    // The attempts are listed; the endpoint is active again (a success after the ladder).
    const attempts = (await api("GET", `/v1/webhooks/${id}/attempts`, backend)).body.attempts as Json[];
    expect(attempts.some((a) => a.status === 500)).toBe(true);
    expect(attempts.some((a) => a.status === 204)).toBe(true);
    expect((await api("GET", `/v1/webhooks/${id}`, backend)).body.status).toBe("active");
  });

  it("keeps one request in flight when events are committed while one is (the first sent from the commit itself)", async () => {
    const { api, backend, endpoint, order, headSeq } = await start();
    let open = 0;
    let mostOpen = 0;
    // Each answer takes a while, so commits land while a request is in flight.
    const receiver = await startReceiver((_d, response) => {
      open++;
      mostOpen = Math.max(mostOpen, open);
      setTimeout(() => {
        open--;
        response.writeHead(204).end();
      }, 30);
    });
    const { id } = await endpoint(receiver);
    for (let burst = 0; burst < 4; burst++) {
      await Promise.all(Array.from({ length: 5 }, () => order()));
      // Idle again between bursts (answered, position written): the next burst's first event goes
      // out from the commit.
      const want = (burst + 1) * 5;
      await waitFor(`the position at ${want}`, async () => {
        const got = await api("GET", `/v1/webhooks/${id}`, backend);
        return got.body.position === want;
      });
    }
    const head = await headSeq();
    expect(mostOpen).toBe(1);
    expect(receiver.deliveries.map((d) => d.seq)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
  });

  it("disables an endpoint that answers 410 Gone, and says so on the partner's MQTT status topic", async () => {
    const { system, partner, api, backend, endpoint, order } = await start();
    const receiver = await startReceiver((_d, response) => response.writeHead(410).end());
    const { id } = await endpoint(receiver);
    const statuses = await watchPartnerStatus(system.mqttUrl, partner, `webhook-status-${id}`);
    await order();
    const disabled = await waitFor("the endpoint disabled", async () => {
      const got = await api("GET", `/v1/webhooks/${id}`, backend);
      return got.body.status === "disabled" && got.body;
    });
    expect(disabled.status_reason).toMatch(/410/);
    expect(disabled.position).toBe(0); // never skips: the event stays owed
    expect(receiver.deliveries).toHaveLength(1);
    const attempts = (await api("GET", `/v1/webhooks/${id}/attempts`, backend)).body.attempts as Json[];
    expect(attempts[0]).toMatchObject({ kind: "delivery", seq: 1, status: 410 });
    const announced = await waitFor("the status announced over MQTT", () =>
      statuses.find((status) => status.type === "webhook_endpoint"),
    );
    expect(announced).toMatchObject({ endpoint_id: id, status: "disabled", reason: disabled.status_reason });
  });

  it("walks a failing endpoint down the ladder to poll_only (probed, not pushed), says so, and back to active", async () => {
    const { system, partner, api, backend, endpoint, order, headSeq } = await start({
      BREWCAST_WEBHOOK_POLL_ONLY_AFTER_MS: "800",
      BREWCAST_WEBHOOK_PROBE_INTERVAL_MS: "1500",
    });
    const receiver = await startReceiver((_d, response) => response.writeHead(503).end());
    const { id } = await endpoint(receiver);
    const statuses = await watchPartnerStatus(system.mqttUrl, partner, `webhook-ladder-${id}`);
    await order();
    const pollOnly = await waitFor("the endpoint poll_only", async () => {
      const got = await api("GET", `/v1/webhooks/${id}`, backend);
      return got.body.status === "poll_only" && got.body;
    });
    expect(pollOnly.status_reason).toMatch(/no pushes, one probe every 2 s/);
    expect(pollOnly.position).toBe(0);
    const announced = await waitFor("throttled, then poll_only, announced over MQTT", () => {
      const seen = statuses
        .filter((status) => status.type === "webhook_endpoint")
        .map((status) => status.status);
      return seen.includes("poll_only") && seen;
    });
    expect(announced.slice(0, 2)).toEqual(["throttled", "poll_only"]);
    const metrics = await (await fetch(`${system.apiUrl}/metrics`)).text();
    expect(metrics).toContain(
      `brewcast_webhook_endpoint_status{partner="${partner.id}",endpoint="${id}",status="poll_only"} 1`,
    );

    // poll_only: new events push nothing; one probe (the head-of-line event, seq 1) per interval.
    const before = receiver.deliveries.length;
    await order();
    await order();
    await waitFor("two probes", () => receiver.deliveries.length >= before + 2, 10_000);
    const probes = receiver.deliveries.slice(before);
    expect(probes.every((probe) => probe.seq === 1)).toBe(true);
    const arrivals = probes.map((probe) => probe.at);
    for (let i = 1; i < arrivals.length; i++) expect(arrivals[i]! - arrivals[i - 1]!).toBeGreaterThan(1_300);

    // The receiver recovers: the next probe succeeds, the endpoint is active and gets everything.
    receiver.answer((_d, response) => response.writeHead(204).end());
    const head = await headSeq();
    await waitFor("every event delivered after the probe", async () => {
      const got = await api("GET", `/v1/webhooks/${id}`, backend);
      return got.body.status === "active" && got.body.position === head;
    });
    const delivered = receiver.deliveries
      .filter((d) => d.at > arrivals[arrivals.length - 1]!)
      .map((d) => d.seq);
    expect(delivered.slice(-3)).toEqual([1, 2, 3]);
    await waitFor("active announced", () => statuses.some((status) => status.status === "active"));
  });

  it("sends nothing to a changed URL until it is confirmed", async () => {
    const { api, backend, endpoint, order, headSeq } = await start();
    const first = await startReceiver();
    const control = await startReceiver();
    const { id } = await endpoint(first);
    await endpoint(control);
    await order();
    await waitFor(
      "the first event at both",
      () => first.deliveries.length === 1 && control.deliveries.length === 1,
    );

    const second = await startReceiver();
    const moved = await api("PATCH", `/v1/webhooks/${id}`, backend, { url: second.url });
    expect(moved.body.status).toBe("pending");
    await order();
    await order();
    await waitFor(
      "the control endpoint at the head",
      async () => control.deliveries.length === (await headSeq()),
    );
    expect(second.deliveries).toHaveLength(0);
    expect(first.deliveries).toHaveLength(1);
    expect((await api("GET", `/v1/webhooks/${id}`, backend)).body.position).toBe(1);

    // Confirmed: the new URL gets what the endpoint still owes, from its position on.
    await api("POST", `/admin/v1/webhooks/${id}/confirm`, null, { url: second.url });
    await waitFor("the new URL caught up", () => second.deliveries.length === 2);
    expect(second.deliveries.map((d) => d.seq)).toEqual([2, 3]);
  });

  it("re-delivers from a seq on replay", async () => {
    const { system, api, backend, endpoint, order } = await start();
    const receiver = await startReceiver();
    const { id } = await endpoint(receiver);
    for (let i = 0; i < 4; i++) await order();
    await waitFor("four delivered", () => receiver.deliveries.length === 4);
    const replayed = await api("POST", `/v1/webhooks/${id}/replay`, backend, { from_seq: 2 });
    expect(replayed.status).toBe(200);
    await waitFor("seq 2..4 again", () => receiver.deliveries.length === 7);
    expect(receiver.deliveries.map((d) => d.seq)).toEqual([1, 2, 3, 4, 2, 3, 4]);
    await order();
    await waitFor("and on", () => receiver.deliveries.length === 8);
    expect(receiver.deliveries.at(-1)!.seq).toBe(5);

    // A replay made by another process (its API), which this one is not told of: the sweep finds it.
    await system.running.db.query(
      "UPDATE webhook_positions SET position = 3, generation = generation + 1 WHERE endpoint_id = $1",
      [id],
    );
    await waitFor("seq 4..5 again", () => receiver.deliveries.length === 10, 15_000);
    expect(receiver.deliveries.slice(8).map((d) => d.seq)).toEqual([4, 5]);
  });

  it("passes over events outside the filter, and retention waits for a failing endpoint", async () => {
    const { system, partner, api, backend, endpoint, order, headSeq } = await start();
    let healthy = false;
    const receiver = await startReceiver((_d, response) => response.writeHead(healthy ? 204 : 503).end());
    const { id } = await endpoint(receiver, { shop_id: partner.shops[1] });
    await order(partner.shops[0]);
    await order(partner.shops[0]);
    await order(partner.shops[1]);
    const head = await headSeq();
    const db = system.running.db;
    await waitFor("the bridge published everything", async () => {
      const [row] = await db.query<{ published_seq: number }>(
        "SELECT published_seq FROM bridge_cursors WHERE partner_id = $1",
        [partner.id],
      );
      return row?.published_seq === head;
    });
    await waitFor("the filtered event failing", () => receiver.deliveries.length >= 2);
    // Passed over the two events of the other shop; stuck at the third.
    await waitFor("the position past the filtered events", async () => {
      return (await api("GET", `/v1/webhooks/${id}`, backend)).body.position === 2;
    });
    const future = new Date(Date.now() + 3 * 86_400_000);
    await pruneHistory(db, 1, future);
    const [kept] = await db.query<{ pruned_through_seq: number }>(
      "SELECT pruned_through_seq FROM partners WHERE id = $1",
      [partner.id],
    );
    expect(kept!.pruned_through_seq).toBe(2);

    healthy = true;
    await waitFor("the endpoint at the head", async () => {
      return (await api("GET", `/v1/webhooks/${id}`, backend)).body.position === head;
    });
    expect(new Set(receiver.deliveries.map((d) => d.seq))).toEqual(new Set([3]));
    await pruneHistory(db, 1, future);
    const [pruned] = await db.query<{ pruned_through_seq: number }>(
      "SELECT pruned_through_seq FROM partners WHERE id = $1",
      [partner.id],
    );
    expect(pruned!.pruned_through_seq).toBe(head);
  });
});
