/**
 * What the consumer does when something is wrong: an answer that would be
 * the same again (400, 401, 403, 404, a refused subscription, a partner the
 * credential cannot read) stops it with one terminal error; what can heal
 * (the network, 429, 5xx) is retried, and every retry is reported as an
 * `error` event with `retryInMs`. Against the whole system where it can
 * answer that way, and against a small real HTTP server for 400, 429 and 503.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ApiError,
  type Consumer,
  type ConsumerEvents,
  type ConsumerOptions,
  createConsumer,
} from "../../src/client/index.ts";
import type { OrderEvent } from "../../src/domain/events.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import { SYSTEM_ADMIN_TOKEN } from "../support/system.ts";
import { appendEvents, nextEvent, type System, startSystem } from "./helpers.ts";

type ErrorInfo = ConsumerEvents["error"][0];

let system: System;

beforeAll(async () => {
  system = await startSystem({ watermarkMs: 200 });
}, 120_000);

afterAll(async () => {
  await system?.close();
});

const optionsFor = (partner: SeededPartner, overrides: Partial<ConsumerOptions> = {}): ConsumerOptions => ({
  apiUrl: system.apiUrl,
  mqttUrl: system.mqttUrl,
  credentialId: partner.backend.id,
  secret: partner.backend.secret,
  watermarkMs: 200,
  reconnectMs: 100,
  retry: { initialMs: 10, maxMs: 200 },
  ...overrides,
});

/** Runs the consumer and records its `error` events; `outcome` settles when run() does. */
const start = (consumer: Consumer) => {
  const errors: ErrorInfo[] = [];
  consumer.on("error", (info) => errors.push(info));
  const handled: OrderEvent[] = [];
  const outcome = consumer.run((event) => {
    handled.push(event);
  });
  outcome.catch(() => undefined);
  return { errors, handled, outcome };
};

/** The rejection of `promise`, or a failure after `ms` (the old consumer retried these forever). */
const rejectionOf = async (promise: Promise<unknown>, ms = 15_000): Promise<Error> => {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`run() did not stop within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([promise, deadline]);
  } catch (error) {
    if ((error as Error).message.startsWith("run() did not stop")) throw error;
    return error as Error;
  } finally {
    clearTimeout(timer);
  }
  throw new Error("run() resolved; expected a rejection");
};

const expectOneTerminalError = (errors: ErrorInfo[], error: Error) => {
  expect(errors.filter((e) => e.fatal)).toEqual([expect.objectContaining({ error, fatal: true })]);
  expect(errors.filter((e) => e.retryInMs !== undefined)).toEqual([]);
};

describe("consumer errors that retrying cannot heal", () => {
  it("404: a device credential asking for another shop stops at once", async () => {
    const partner = await system.seed(2);
    await appendEvents(system, partner.id, partner.shops, 3);
    const consumer = createConsumer(
      optionsFor(partner, {
        credentialId: partner.devices[0]!.id,
        secret: partner.devices[0]!.secret,
        shop: partner.shops[1]!,
      }),
    );
    const { errors, handled, outcome } = start(consumer);
    const error = await rejectionOf(outcome);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(404);
    expect(error.message).toContain("NOT_FOUND");
    expectOneTerminalError(errors, error);
    expect(handled).toEqual([]);
  });

  it("403: a suspended partner's consumer stops with PARTNER_SUSPENDED", async () => {
    const partner = await system.seed(1);
    await appendEvents(system, partner.id, partner.shops, 2);
    const suspended = await fetch(`${system.apiUrl}/admin/v1/partners/${partner.id}/suspend`, {
      method: "POST",
      headers: { authorization: `Bearer ${SYSTEM_ADMIN_TOKEN}` },
    });
    expect(suspended.status).toBe(200);
    const { errors, outcome } = start(createConsumer(optionsFor(partner, { partner: partner.id })));
    const error = await rejectionOf(outcome);
    expect((error as ApiError).status).toBe(403);
    expect((error as ApiError).code).toBe("PARTNER_SUSPENDED");
    // MQTT may answer first: the SDK retries CONNACK 5 (a suspension is lifted by a resume), and
    // the REST answer then stops the consumer. Nothing else is retried.
    const [retries, others] = [
      errors.filter((e) => e.retryInMs !== undefined),
      errors.filter((e) => e.retryInMs === undefined),
    ];
    for (const retry of retries) {
      expect(retry).toMatchObject({ during: "mqtt", error: expect.objectContaining({ code: 5 }) });
    }
    expectOneTerminalError(others, error);
  });

  it("a partner the credential does not belong to stops it, before any event is handed out", async () => {
    const partner = await system.seed(1);
    const other = await system.seed(1);
    await appendEvents(system, partner.id, partner.shops, 3);
    // The history read first (no start jitter): REST names the partner before the broker's SUBACK refuses.
    const { errors, handled, outcome } = start(
      createConsumer(optionsFor(partner, { partner: other.id, jitterMs: 0 })),
    );
    const error = await rejectionOf(outcome);
    expect(error.message).toContain(`partner is ${other.id}`);
    expectOneTerminalError(errors, error);
    expect(handled).toEqual([]);
  });

  it("a refused subscription (SUBACK 0x80) stops it, naming the topic", async () => {
    const partner = await system.seed(1);
    const other = await system.seed(1);
    // No events yet: only the broker can tell that the device may not read the other partner.
    const device = partner.devices[0]!;
    const consumer = createConsumer(
      optionsFor(partner, {
        credentialId: device.id,
        secret: device.secret,
        shop: partner.shops[0]!,
        partner: other.id,
      }),
    );
    const { errors, outcome } = start(consumer);
    const error = await rejectionOf(outcome);
    expect(error.message).toMatch(/subscription to partners\/.+ refused \(SUBACK 0x80\)/);
    expect(error.message).toContain(other.id);
    expect(errors.filter((e) => e.fatal)).toEqual([
      expect.objectContaining({ error, during: "mqtt", fatal: true }),
    ]);
  });

  it("an empty or malformed shop is refused when the consumer is created", () => {
    const partner = { backend: { id: "cr-aaaaaaaaaaaaaaaaaaaa", secret: "x" } } as SeededPartner;
    expect(() => createConsumer(optionsFor(partner, { shop: "" }))).toThrow(/shop id must match/);
    expect(() => createConsumer(optionsFor(partner, { shop: "Down Town" }))).toThrow(/shop id must match/);
  });
});

/** A real HTTP server answering GET /v1/events from a script of answers, then the last one forever. */
const scriptedApi = async (
  answers: { status: number; body: unknown; headers?: Record<string, string> }[],
) => {
  const seen: number[] = [];
  const server: Server = createServer((request, response) => {
    const answer = answers[Math.min(seen.length, answers.length - 1)]!;
    seen.push(answer.status);
    request.resume();
    response.writeHead(answer.status, {
      "content-type": answer.status === 200 ? "application/json" : "application/problem+json",
      ...answer.headers,
    });
    response.end(JSON.stringify(answer.body));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
};

const problem = (status: number, code: string) => ({ status, body: { status, code, title: code } });

describe("consumer retries what can heal, and says so", () => {
  const scripted: { close(): Promise<void> }[] = [];
  afterAll(async () => {
    for (const api of scripted) await api.close();
  });

  it("400 stops it with the server's code after one request", async () => {
    const api = await scriptedApi([problem(400, "VALIDATION_FAILED")]);
    scripted.push(api);
    const consumer = createConsumer({
      apiUrl: api.url,
      mqttUrl: "mqtt://127.0.0.1:1",
      credentialId: "cr-aaaaaaaaaaaaaaaaaaaa",
      secret: "bcs_x",
      retry: { initialMs: 10, maxMs: 50 },
    });
    const { errors, outcome } = start(consumer);
    const error = await rejectionOf(outcome);
    expect((error as ApiError).status).toBe(400);
    expect((error as ApiError).code).toBe("VALIDATION_FAILED");
    expectOneTerminalError(errors, error);
    expect(api.seen).toEqual([400]);
  });

  it("429 (after its Retry-After) and 503 are retried, each retry reported, until the answer comes", async () => {
    const event = {
      seq: 1,
      epoch: "00000000-0000-4000-8000-000000000001",
      type: "order.created",
      partner_id: "scripted",
      shop_id: "s1",
      order_id: "00000000-0000-4000-8000-000000000002",
      occurred_at: new Date().toISOString(),
      prev_shop_seq: null,
      order: {},
    };
    const api = await scriptedApi([
      { ...problem(429, "RATE_LIMITED"), headers: { "retry-after": "1" } },
      problem(503, "UNAVAILABLE"),
      { status: 200, body: { events: [event], head_seq: 1, epoch: event.epoch } },
    ]);
    scripted.push(api);
    const consumer = createConsumer({
      apiUrl: api.url,
      mqttUrl: "mqtt://127.0.0.1:1",
      credentialId: "cr-aaaaaaaaaaaaaaaaaaaa",
      secret: "bcs_x",
      partner: "scripted",
      reconnectMs: 60_000,
      retry: { initialMs: 10, maxMs: 5_000 },
    });
    const handledOne = nextEvent<{ seq: number }>(consumer, "handled");
    const { errors, outcome } = start(consumer);
    expect((await handledOne).seq).toBe(1);
    await consumer.stop();
    await outcome;
    const rest = errors.filter((e) => e.during === "rest");
    expect(rest.map((e) => (e.error as ApiError).status)).toEqual([429, 503]);
    expect(rest[0]!.retryInMs).toBeGreaterThanOrEqual(1_000);
    expect(rest[1]!.retryInMs).toBeGreaterThan(0);
    expect(errors.some((e) => e.fatal)).toBe(false);
  });

  it("an unreachable API is retried with backoff, every retry reported, never a terminal error", async () => {
    const closed = await scriptedApi([problem(500, "INTERNAL")]);
    await closed.close(); // its port is now free: connections are refused
    const consumer = createConsumer({
      apiUrl: closed.url,
      mqttUrl: "mqtt://127.0.0.1:1",
      credentialId: "cr-aaaaaaaaaaaaaaaaaaaa",
      secret: "bcs_x",
      retry: { initialMs: 10, maxMs: 40 },
    });
    const { errors, outcome } = start(consumer);
    await nextEvent<ErrorInfo>(consumer, "error", (e) => e.during === "rest" && (e.attempt ?? 0) >= 4);
    await consumer.stop();
    await outcome;
    const rest = errors.filter((e) => e.during === "rest");
    expect(rest.map((e) => e.attempt)).toEqual(rest.map((_, i) => i + 1));
    expect(rest.map((e) => e.retryInMs)).toEqual(rest.map((_, i) => Math.min(10 * 2 ** i, 40)));
    expect(rest[0]!.error.message).toContain(`GET ${closed.url}/v1/events: connect ECONNREFUSED`);
    expect(errors.some((e) => e.fatal)).toBe(false);
  });
});

describe("consumer positions past the head", () => {
  it("says so with an `ahead` event instead of waiting silently", async () => {
    const partner = await system.seed(1);
    await appendEvents(system, partner.id, partner.shops, 3);
    const consumer = createConsumer(optionsFor(partner, { after: 10 }));
    const ahead = nextEvent<{ seq: number; head: number }>(consumer, "ahead");
    const { outcome } = start(consumer);
    expect(await ahead).toEqual({ seq: 10, head: 3 });
    await consumer.stop();
    await outcome;
  });
});
