/**
 * Requests to the HTTP app of a TestApp by `inject()` (no socket), as the
 * tests under test/api/ make them, and the checks they share: an error is
 * RFC 9457 problem+json naming its code and field, and a refused request
 * wrote nothing (the partner's footprint in the database is unchanged).
 */
import type { LightMyRequestResponse } from "fastify";
import { expect } from "vitest";
import type { OrderEvent } from "../../src/domain/events.ts";
import type { Order } from "../../src/domain/orders.ts";
import type { SeededPartner } from "./fixtures.ts";
import { bearer, type TestApp } from "./test-app.ts";

export type Headers = Record<string, string>;

/** What the database holds for a partner: the check that a refused request wrote nothing. */
export interface Footprint {
  head_seq: number;
  state: string;
  events: number;
  orders: number;
  keys: number;
  statuses: string;
  shops: number;
  credentials: number;
}

/** The requests of the API tests, against the app `app()` returns when called (set in a beforeAll). */
export const apiRequests = (app: () => TestApp) => {
  const post = (url: string, headers: Headers, payload: unknown) =>
    app().app.inject({ method: "POST", url, headers, payload: payload as Record<string, unknown> });
  const get = (url: string, headers: Headers) => app().app.inject({ method: "GET", url, headers });

  const createOrder = (p: SeededPartner, shop = 0, extra: Headers = {}, secret = p.backend.secret) =>
    post(
      "/v1/orders",
      { ...bearer(secret), ...extra },
      { shop_id: p.shops[shop], items: [{ sku: "latte", quantity: 1 }] },
    );

  const newOrder = async (p: SeededPartner, shop = 0): Promise<Order> => {
    const response = await createOrder(p, shop);
    expect(response.statusCode).toBe(201);
    return response.json<Order>();
  };

  const patchStatus = (p: SeededPartner, orderId: string, status: string, secret = p.backend.secret) =>
    app().app.inject({
      method: "PATCH",
      url: `/v1/orders/${orderId}`,
      headers: bearer(secret),
      payload: { status },
    });

  const readEvents = async (secret: string, query = "after=0&limit=1000"): Promise<OrderEvent[]> => {
    const response = await get(`/v1/events?${query}`, bearer(secret));
    expect(response.statusCode).toBe(200);
    return response.json<{ events: OrderEvent[] }>().events;
  };

  const footprint = async (partnerId: string): Promise<Footprint> => {
    const [row] = await app().db.query<Footprint & Record<string, unknown>>(
      `SELECT p.head_seq, p.state,
         (SELECT count(*)::int FROM order_events e WHERE e.partner_id = p.id) AS events,
         (SELECT count(*)::int FROM orders o WHERE o.partner_id = p.id) AS orders,
         (SELECT count(*)::int FROM idempotency_keys k WHERE k.partner_id = p.id) AS keys,
         (SELECT coalesce(json_agg(o.status ORDER BY o.id), '[]')::text FROM orders o WHERE o.partner_id = p.id) AS statuses,
         (SELECT count(*)::int FROM shops s WHERE s.partner_id = p.id) AS shops,
         (SELECT count(*)::int FROM credentials c WHERE c.partner_id = p.id) AS credentials
       FROM partners p WHERE p.id = $1`,
      [partnerId],
    );
    if (!row) throw new Error(`no partner ${partnerId}`);
    return row;
  };

  return { post, get, createOrder, newOrder, patchStatus, readEvents, footprint };
};

/** The RFC 9457 shape, the stable code, and (when given) the field the error names. */
export const expectProblem = (
  response: LightMyRequestResponse,
  status: number,
  code: string,
  field?: string,
) => {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
  const problem = response.json();
  expect(problem).toMatchObject({ status, code, type: expect.stringMatching(/^urn:brewcast:problem:/) });
  expect(typeof problem.title).toBe("string");
  expect(problem.title.length).toBeGreaterThan(0);
  expect(typeof problem.detail).toBe("string");
  expect(problem.detail.length).toBeGreaterThan(0);
  if (field !== undefined) {
    expect(problem.errors?.map((e: { field: string }) => e.field)).toContain(field);
  }
  return problem;
};
