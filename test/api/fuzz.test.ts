/**
 * Bad input gets a clear error and changes nothing (DESIGN.md, guarantee 6).
 *
 * Property-based: random bodies, query strings, path ids and headers
 * (Authorization, Idempotency-Key, Content-Type) at every /v1 and /admin/v1
 * operation of the published OpenAPI document, with valid and invalid
 * credentials so that requests get past authentication into validation and
 * the stores. For every response: never a 5xx; every 4xx is
 * application/problem+json with a registry code whose status it carries; and
 * after a 4xx no row was written (row counts of every table, the sum of
 * partners.head_seq, and the partner states, revocations, certificates and
 * order statuses are as before).
 *
 * Reproduce a failure with the seed fast-check prints:
 *   FUZZ_SEED=<seed> npx vitest run test/api/fuzz.test.ts
 * FUZZ_RUNS sets the runs per route family (default 400, shared by its operations).
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPENAPI_PATH } from "../../scripts/generate-schemas.ts";
import { ERROR_CODES, ERRORS, type ErrorCode } from "../../src/domain/errors.ts";
import type { Row } from "../../src/store/db.ts";
import { type SeededPartner, seedPartner } from "../support/fixtures.ts";
import { admin, bearer, createTestApp, TEST_ADMIN_TOKEN, type TestApp } from "../support/test-app.ts";
import { DEFAULT_ADAPTER } from "../support/test-db.ts";

const FAMILY_RUNS = Number(process.env.FUZZ_RUNS ?? 400);
const BASE_SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);

// --- the operations under test, from the published document ---------------------------------

interface Operation {
  method: string;
  path: string;
  area: "partner" | "admin";
  pathParams: string[];
  queryParams: string[];
  hasBody: boolean;
}

type JsonDoc = {
  paths: Record<
    string,
    Record<string, { parameters?: { in: string; name: string }[]; requestBody?: unknown }>
  >;
};

const OPERATIONS: Operation[] = Object.entries(
  (JSON.parse(readFileSync(OPENAPI_PATH, "utf8")) as JsonDoc).paths,
)
  .filter(([path]) => path.startsWith("/v1/") || path.startsWith("/admin/v1/"))
  // A valid request to the event stream is answered with a response that never ends, which
  // inject() would wait for; its bad input is tested in test/stream/event-stream.test.ts.
  .filter(([path]) => path !== "/v1/events/stream")
  .flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({
      method: method.toUpperCase(),
      path,
      area: path.startsWith("/admin/") ? ("admin" as const) : ("partner" as const),
      pathParams: (operation.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name),
      queryParams: (operation.parameters ?? []).filter((p) => p.in === "query").map((p) => p.name),
      hasBody: operation.requestBody !== undefined,
    })),
  );

// --- the database's visible state -------------------------------------------------------------

const SNAPSHOT_SQL = `
SELECT
  (SELECT count(*) FROM partners)::int AS partners,
  (SELECT count(*) FROM shops)::int AS shops,
  (SELECT count(*) FROM credentials)::int AS credentials,
  (SELECT count(*) FROM orders)::int AS orders,
  (SELECT count(*) FROM order_events)::int AS order_events,
  (SELECT count(*) FROM idempotency_keys)::int AS idempotency_keys,
  (SELECT count(*) FROM webhook_endpoints)::int AS webhook_endpoints,
  (SELECT count(*) FROM webhook_audit)::int AS webhook_audit,
  (SELECT coalesce(sum(position), 0)::text FROM webhook_positions) AS webhook_positions,
  (SELECT coalesce(sum(head_seq), 0)::text FROM partners) AS head_seq_sum,
  (SELECT count(*) FROM credentials WHERE revoked_at IS NOT NULL)::int AS revoked,
  (SELECT count(*) FROM credentials WHERE cert_fingerprint IS NOT NULL)::int AS certificates,
  (SELECT coalesce(string_agg(id || '=' || state, ',' ORDER BY id), '') FROM partners) AS partner_states,
  (SELECT coalesce(md5(string_agg(id::text || '=' || status, ',' ORDER BY id)), '') FROM orders) AS order_statuses
`;

// --- nasty values -----------------------------------------------------------------------------

const NASTY_STRINGS = [
  "",
  " ",
  "0",
  "-1",
  "1.5",
  "1e3",
  "1e309",
  "-1e309",
  "Infinity",
  "NaN",
  "0x10",
  "+1",
  "-0",
  " 5",
  "5 ",
  "١٢",
  "9007199254740993",
  "99999999999999999999999999999999",
  "null",
  "undefined",
  "true",
  "[]",
  "{}",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "\u0000",
  "a\u0000b",
  "..",
  "../admin/v1/partners",
  "%",
  "%00",
  "%E0%A4%A",
  "💥☕️",
  "é",
  "İ",
  "\u202e",
  "\ufeff",
  "shop-1\n",
  "SHOP-1",
  "'; DROP TABLE orders; --",
  "x".repeat(65),
  "x".repeat(300),
  "9".repeat(400),
  "a".repeat(5000),
];

const nastyString = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 80 }) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary-ascii", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.integer().map(String) },
  { weight: 1, arbitrary: fc.double().map(String) },
  { weight: 1, arbitrary: fc.bigInt().map(String) },
);

const NASTY_JSON: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  -0,
  1.5,
  2 ** 31,
  2 ** 53 + 2,
  1e308,
  -1e308,
  Number.MIN_VALUE,
  "",
  "__proto__",
  [],
  {},
  [null],
  [{}],
  { __proto__: null },
  "\u0000",
];

const nastyJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY_JSON) },
  { weight: 2, arbitrary: nastyString },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.constantFrom("x".repeat(70_000), "é".repeat(40_000)) },
);

/** A valid value most of the time, a nasty one otherwise. */
const mostly = <T>(valid: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: nastyJson });

// --- the test world ---------------------------------------------------------------------------

interface World {
  a: SeededPartner;
  b: SeededPartner;
  suspended: SeededPartner;
  target: SeededPartner;
  revokedSecret: string;
  orderIds: string[];
  credentialIds: string[];
}

const json = (response: { body: string }) => JSON.parse(response.body) as Record<string, unknown>;

const buildWorld = async (t: TestApp): Promise<World> => {
  const a = await seedPartner(t.db, { shops: 2, prefix: "fuzz-a" });
  const b = await seedPartner(t.db, { shops: 1, prefix: "fuzz-b" });
  const suspended = await seedPartner(t.db, { shops: 1, prefix: "fuzz-s" });
  const target = await seedPartner(t.db, { shops: 2, prefix: "fuzz-t" });
  const orderIds: string[] = [];
  for (const [partner, shop] of [
    [a, a.shops[0]],
    [a, a.shops[1]],
    [b, b.shops[0]],
  ] as const) {
    const created = await t.app.inject({
      method: "POST",
      url: "/v1/orders",
      headers: bearer(partner.backend.secret),
      payload: { shop_id: shop, items: [{ sku: "latte", quantity: 1 }] },
    });
    expect(created.statusCode).toBe(201);
    orderIds.push(json(created).id as string);
  }
  // A terminal order: every further transition is illegal.
  for (const status of ["cancelled"]) {
    const patched = await t.app.inject({
      method: "PATCH",
      url: `/v1/orders/${orderIds[1]}`,
      headers: bearer(a.backend.secret),
      payload: { status },
    });
    expect(patched.statusCode).toBe(200);
  }
  const revoked = await t.app.inject({
    method: "POST",
    url: `/admin/v1/partners/${a.id}/credentials`,
    headers: admin(),
    payload: { kind: "backend" },
  });
  expect(revoked.statusCode).toBe(201);
  const revokedBody = json(revoked);
  expect(
    (
      await t.app.inject({
        method: "DELETE",
        url: `/admin/v1/credentials/${revokedBody.id}`,
        headers: admin(),
      })
    ).statusCode,
  ).toBe(200);
  expect(
    (
      await t.app.inject({
        method: "POST",
        url: `/admin/v1/partners/${suspended.id}/suspend`,
        headers: admin(),
      })
    ).statusCode,
  ).toBe(200);
  return {
    a,
    b,
    suspended,
    target,
    revokedSecret: revokedBody.secret as string,
    orderIds,
    credentialIds: [
      target.backend.id,
      ...target.devices.map((d) => d.id),
      a.backend.id,
      revokedBody.id as string,
    ],
  };
};

// --- request generators -----------------------------------------------------------------------

/** Header values a real HTTP parser lets through: visible ASCII, space, tab and obs-text. */
const headerText = (maxLength: number) =>
  fc
    .array(
      fc.oneof(
        { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
        { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
        { weight: 1, arbitrary: fc.constant(0x09) },
      ),
      { maxLength },
    )
    .map((codes) => String.fromCharCode(...codes));

const authorization = (world: World, area: Operation["area"]) => {
  const good =
    area === "admin"
      ? [TEST_ADMIN_TOKEN]
      : [
          world.a.backend.secret,
          world.a.devices[0]!.secret,
          world.a.devices[1]!.secret,
          world.b.backend.secret,
        ];
  const other = [
    world.revokedSecret,
    world.suspended.backend.secret,
    area === "admin" ? world.a.backend.secret : TEST_ADMIN_TOKEN,
  ];
  return fc.oneof(
    { weight: 24, arbitrary: fc.constantFrom(...good).map((secret) => `Bearer ${secret}`) },
    { weight: 2, arbitrary: fc.constantFrom(...other).map((secret) => `Bearer ${secret}`) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        "",
        "Bearer",
        "Bearer ",
        "bearer x",
        `bearer ${good[0]}`,
        `Bearer ${good[0]} `,
        `Bearer  ${good[0]}`,
        `Bearer ${good[0]}x`,
        `Basic ${Buffer.from("user:pass").toString("base64")}`,
        `Bearer ${"a".repeat(513)}`,
        `Bearer ${"a".repeat(10_000)}`,
        "Bearer é",
        "Bearer null",
      ),
    },
    { weight: 1, arbitrary: headerText(80).map((s) => `Bearer ${s}`) },
    { weight: 1, arbitrary: headerText(80) },
  );
};

const idempotencyKey = fc.oneof(
  { weight: 6, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constantFrom("fuzz-key-1", "fuzz-key-2") },
  { weight: 1, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "a b", "é", "k".repeat(255), "k".repeat(256), "\t") },
  { weight: 1, arbitrary: headerText(300) },
);

const CONTENT_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "application/json; charset=latin1",
  "APPLICATION/JSON",
  "application/problem+json",
  "application/merge-patch+json",
  "text/plain",
  "text/json",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/octet-stream",
  "",
  ";",
  "application/json; boundary=",
];
const contentType = fc.oneof(
  { weight: 14, arbitrary: fc.constant("application/json") },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
  { weight: 1, arbitrary: headerText(40) },
);

const RAW_BODIES = [
  "",
  " ",
  "null",
  "true",
  "0",
  '""',
  "[]",
  "{}",
  "{",
  "}",
  '{"a":',
  "\u0000",
  '{"a":"\u0000"}',
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  '{"shop_id":"shop-1","shop_id":"shop-2","items":[{"sku":"a","quantity":1}]}',
  '{"shop_id":"shop-1","items":[{"sku":"a","quantity":1e400}]}',
  '{"shop_id":"shop-1","items":[{"sku":"a","quantity":1.0}]}',
  '{"shop_id":"shop-1","items":[{"sku":"a","quantity":-0}]}',
  '{"shop_id":"shop-1","items":[{"sku":"a","quantity":99999999999999999999999}]}',
  '{"status":"accepted","__proto__":{"status":"cancelled"}}',
  '{"kind":"device","shop_id":"shop-1","kind":"backend"}',
  '{"id":"p-x","name":"x"}garbage',
  "\ufeff{}",
  `${"[".repeat(5000)}${"]".repeat(5000)}`,
  `{"name":"${"x".repeat(70_000)}"}`,
];

/** A body shaped like the route's, with any field valid, nasty, missing or extra. */
const shapedBody = (op: Operation, world: World): fc.Arbitrary<unknown> => {
  const shopId = fc.constantFrom(...world.a.shops, ...world.target.shops, "shop-9");
  const slug = fc.oneof(fc.stringMatching(/^[a-z0-9-]{1,64}$/), fc.constantFrom(world.a.id, world.target.id));
  const name = fc.string({ minLength: 1, maxLength: 40 });
  const extra = fc.dictionary(fc.oneof(nastyString, fc.constantFrom("__proto__", "constructor")), nastyJson, {
    maxKeys: 2,
  });
  const withExtra = (shape: fc.Arbitrary<Record<string, unknown>>) =>
    fc.oneof(
      { weight: 4, arbitrary: shape },
      { weight: 1, arbitrary: fc.tuple(shape, extra).map(([body, more]) => ({ ...more, ...body })) },
    );
  const key = `${op.method} ${op.path}`;
  if (key === "POST /v1/orders") {
    const item = withExtra(
      fc.record(
        {
          sku: mostly(fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/)),
          quantity: mostly(fc.integer({ min: 1, max: 99 })),
        },
        { requiredKeys: [] },
      ),
    );
    return withExtra(
      fc.record(
        {
          shop_id: mostly(shopId),
          items: mostly(
            fc.oneof(
              { weight: 4, arbitrary: fc.array(item, { maxLength: 3 }) },
              { weight: 1, arbitrary: fc.array(item, { minLength: 48, maxLength: 52 }) },
            ),
          ),
        },
        { requiredKeys: [] },
      ),
    );
  }
  if (key === "PATCH /v1/orders/{id}") {
    const status = fc.constantFrom(
      "created",
      "accepted",
      "preparing",
      "ready",
      "picked_up",
      "cancelled",
      "CANCELLED",
    );
    return withExtra(fc.record({ status: mostly(status) }, { requiredKeys: [] }));
  }
  if (key === "POST /admin/v1/partners" || key === "POST /admin/v1/partners/{partner}/shops") {
    return withExtra(fc.record({ id: mostly(slug), name: mostly(name) }, { requiredKeys: [] }));
  }
  if (key === "POST /admin/v1/partners/{partner}/credentials") {
    return withExtra(
      fc.record(
        { kind: mostly(fc.constantFrom("backend", "device")), shop_id: mostly(shopId) },
        { requiredKeys: [] },
      ),
    );
  }
  if (key === "POST /admin/v1/credentials/{id}/certificates") {
    const fingerprint = fc.oneof(
      fc.stringMatching(/^[0-9a-f]{64}$/),
      fc.stringMatching(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/),
    );
    return withExtra(fc.record({ fingerprint_sha256: mostly(fingerprint) }, { requiredKeys: [] }));
  }
  if (key === "PUT /admin/v1/partners/{partner}/state") {
    const state = fc.constantFrom("normal", "throttled", "poll_only", "suspended", "SUSPENDED");
    return withExtra(fc.record({ state: mostly(state), reason: mostly(name) }, { requiredKeys: [] }));
  }
  return fc.dictionary(nastyString, nastyJson, { maxKeys: 3 });
};

type Body = { kind: "none" } | { kind: "raw"; text: string } | { kind: "json"; value: unknown };

const body = (op: Operation, world: World): fc.Arbitrary<Body> =>
  fc.oneof(
    { weight: op.hasBody ? 1 : 6, arbitrary: fc.constant<Body>({ kind: "none" }) },
    {
      weight: op.hasBody ? 8 : 1,
      arbitrary: shapedBody(op, world).map((value): Body => ({ kind: "json", value })),
    },
    { weight: 2, arbitrary: nastyJson.map((value): Body => ({ kind: "json", value })) },
    { weight: 2, arbitrary: fc.constantFrom(...RAW_BODIES).map((text): Body => ({ kind: "raw", text })) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }).map((text): Body => ({ kind: "raw", text })) },
  );

const QUERY_VALUES = (world: World) => [
  ...world.a.shops,
  "shop-9",
  "created",
  "cancelled",
  "1",
  "20",
  "100",
  "101",
  "1000",
  "1001",
  ...world.orderIds,
];

const query = (op: Operation, world: World): fc.Arbitrary<string> => {
  const keys = fc.oneof(
    { weight: 6, arbitrary: op.queryParams.length > 0 ? fc.constantFrom(...op.queryParams) : nastyString },
    { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "limit[]", "limit[0]", "a[b]", "") },
    { weight: 1, arbitrary: nastyString },
  );
  const values = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...QUERY_VALUES(world)) },
    { weight: 1, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: fc.integer({ min: -5, max: 2000 }).map(String) },
    { weight: 3, arbitrary: nastyString },
  );
  const pair = fc.tuple(keys, fc.option(values, { freq: 8 }), fc.boolean()).map(([k, v, raw]) => {
    const encode = (s: string) =>
      raw && /^[\x21-\x7e]*$/.test(s) && !/[#&=]/.test(s) ? s : encodeURIComponent(s);
    return v === null ? encode(k) : `${encode(k)}=${encode(v)}`;
  });
  return fc.array(pair, { maxLength: 6 }).map((pairs) => (pairs.length === 0 ? "" : `?${pairs.join("&")}`));
};

/**
 * KNOWN ISSUE: a path Fastify's router refuses before any route runs (bad
 * percent-encoding, a parameter over `maxParamLength`) is answered by
 * Fastify's built-in 400/414 application/json, not problem+json, because
 * app.ts does not pass `frameworkErrors` to Fastify. problem.ts already maps
 * FST_ERR_BAD_URL and FST_ERR_MAX_PARAM_LENGTH. Until app.ts wires it, those
 * paths are left out of the random runs and pinned by an `it.fails` test
 * below; when that test starts failing, delete both and this flag.
 */
const KNOWN_ISSUE_FRAMEWORK_ERRORS = false;
const MALFORMED_PATHS = ["%", "%E0%A4%A", "%ZZ", "a%"];
const MAX_PARAM_LENGTH = 200;
const routable = (segment: string): boolean => {
  if (segment.length > MAX_PARAM_LENGTH) return false;
  try {
    decodeURIComponent(segment);
    return true;
  } catch {
    return false;
  }
};

const pathValue = (op: Operation, name: string, world: World): fc.Arbitrary<string> => {
  const valid =
    name === "partner"
      ? fc.constantFrom(world.target.id, world.suspended.id, world.b.id, "no-such-partner")
      : name === "id" && op.path.startsWith("/v1/orders/")
        ? fc.oneof(
            { weight: 4, arbitrary: fc.constantFrom(...world.orderIds) },
            { weight: 1, arbitrary: fc.uuid() },
          )
        : name === "id" && op.path.startsWith("/admin/v1/credentials/")
          ? fc.oneof(
              { weight: 4, arbitrary: fc.constantFrom(...world.credentialIds) },
              { weight: 1, arbitrary: fc.stringMatching(/^cr-[a-z2-7]{20}$/) },
            )
          : fc.stringMatching(/^[a-z0-9-]{1,64}$/);
  return fc
    .oneof(
      { weight: 6, arbitrary: valid.map(encodeURIComponent) },
      { weight: 2, arbitrary: nastyString.map(encodeURIComponent) },
      { weight: 1, arbitrary: fc.constantFrom(...MALFORMED_PATHS, "%00", "..", ".", "%2e%2e", "a%2Fb") },
    )
    .filter((segment) => !KNOWN_ISSUE_FRAMEWORK_ERRORS || routable(segment));
};

interface Request {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string;
}

const request = (op: Operation, world: World): fc.Arbitrary<Request> =>
  fc
    .record({
      params: fc.tuple(...op.pathParams.map((name) => pathValue(op, name, world))),
      query: query(op, world),
      body: body(op, world),
      authorization: authorization(world, op.area),
      idempotencyKey: op.method === "POST" ? idempotencyKey : fc.constant(undefined),
      contentType,
      requestId: fc.option(headerText(300), { freq: 10 }),
    })
    .map((r) => {
      let i = 0;
      const path = op.path.replace(/\{\w+\}/g, () => r.params[i++] as string);
      const headers: Record<string, string> = {};
      if (r.authorization !== undefined) headers.authorization = r.authorization;
      if (r.idempotencyKey !== undefined) headers["idempotency-key"] = r.idempotencyKey;
      if (r.requestId !== null) headers["x-request-id"] = r.requestId;
      const result: Request = { method: op.method, url: `${path}${r.query}`, headers };
      if (r.body.kind !== "none") {
        result.payload = r.body.kind === "raw" ? r.body.text : (JSON.stringify(r.body.value) ?? "");
        if (r.contentType !== undefined) headers["content-type"] = r.contentType;
      }
      return result;
    });

// --- the property -----------------------------------------------------------------------------

const describeRequest = (r: Request) =>
  JSON.stringify({
    ...r,
    payload: r.payload && r.payload.length > 500 ? `${r.payload.slice(0, 500)}…` : r.payload,
  });

/**
 * Sends one request and checks the answer. `state.rows` is the snapshot
 * taken after the previous request (nothing else writes meanwhile); it is
 * replaced before any assertion, so a failing run does not poison the next
 * (fast-check keeps running while it shrinks).
 */
const checkResponse = async (t: TestApp, r: Request, state: { rows: Row }): Promise<void> => {
  const before = state.rows;
  const response = await t.app.inject(r);
  const [after] = (await t.db.query(SNAPSHOT_SQL)) as [Row];
  state.rows = after;
  const where = `${response.statusCode} for ${describeRequest(r)}: ${response.body.slice(0, 800)}`;
  expect(response.statusCode, where).toBeLessThan(500);
  if (response.statusCode < 400) return;
  expect(String(response.headers["content-type"]), where).toMatch(/^application\/problem\+json/);
  if (r.method !== "HEAD") {
    const problem = JSON.parse(response.body) as { code: ErrorCode; status: number; errors?: unknown[] };
    expect(ERROR_CODES, where).toContain(problem.code);
    expect(problem.status, where).toBe(response.statusCode);
    expect(ERRORS[problem.code].status, where).toBe(response.statusCode);
    if (problem.code === "VALIDATION_FAILED")
      expect(problem.errors?.length ?? 0, `${where}: names no field`).toBeGreaterThan(0);
  }
  expect(after, `rows changed by ${where}`).toEqual(before);
};

describe(`fuzz: bad input gets problem+json and writes nothing (${DEFAULT_ADAPTER}, seed ${BASE_SEED})`, () => {
  let t: TestApp;
  let world: World;
  const state = { rows: {} as Row };
  const check = (r: Request) => checkResponse(t, r, state);

  beforeAll(async () => {
    t = await createTestApp(DEFAULT_ADAPTER);
    world = await buildWorld(t);
    [state.rows] = (await t.db.query(SNAPSHOT_SQL)) as [Row];
  }, 120_000);
  afterAll(async () => t.close());

  it("covers every /v1 and /admin/v1 operation", () => {
    expect(OPERATIONS.filter((op) => op.area === "partner").length).toBeGreaterThanOrEqual(6);
    expect(OPERATIONS.filter((op) => op.area === "admin").length).toBeGreaterThanOrEqual(10);
  });

  it("named nasty inputs on every operation", async () => {
    for (const op of OPERATIONS) {
      const path = op.path.replace(/\{\w+\}/g, (m) =>
        m === "{partner}" ? world.target.id : m === "{id}" ? (world.orderIds[0] as string) : "x",
      );
      const auth = op.area === "admin" ? admin() : bearer(world.a.backend.secret);
      const cases: Request[] = [
        { method: op.method, url: `${path}?limit=1&limit=2`, headers: auth },
        { method: op.method, url: `${path}?limit=1e309&after=-1&older_than=1.5&shop_id=%00`, headers: auth },
        { method: op.method, url: `${path}?__proto__=1&constructor=x`, headers: auth },
        {
          method: op.method,
          url: path,
          headers: { ...auth, "content-type": "application/json" },
          payload: '{"__proto__":{"polluted":true}}',
        },
        {
          method: op.method,
          url: path,
          headers: { ...auth, "content-type": "application/json" },
          payload: "[[]]",
        },
        {
          method: op.method,
          url: path,
          headers: { ...auth, "content-type": "application/json" },
          payload: "{\u0000}",
        },
        {
          method: op.method,
          url: path,
          headers: { ...auth, "content-type": "application/json" },
          payload: JSON.stringify({ id: "x".repeat(70_000) }),
        },
        { method: op.method, url: path.replace(/\/[^/]+$/, "/%00"), headers: auth },
        { method: op.method, url: `${path}/9`, headers: auth },
        { method: op.method, url: path, headers: { authorization: `Bearer ${randomUUID()}` } },
      ];
      for (const c of cases) await check(c);
    }
  });

  it("concurrent conflicting writes get 4xx problem+json, never 5xx", async () => {
    const backend = bearer(world.a.backend.secret);
    const order = (shop: string, quantity: number) => ({ shop_id: shop, items: [{ sku: "race", quantity }] });
    const batches: Request[][] = [
      // One Idempotency-Key, the same body: one 201, the rest replays.
      Array.from({ length: 8 }, () => ({
        method: "POST",
        url: "/v1/orders",
        headers: { ...backend, "idempotency-key": "race-same", "content-type": "application/json" },
        payload: JSON.stringify(order(world.a.shops[0]!, 1)),
      })),
      // One Idempotency-Key, different bodies: one 201, then replays or 422.
      Array.from({ length: 8 }, (_, i) => ({
        method: "POST",
        url: "/v1/orders",
        headers: { ...backend, "idempotency-key": "race-different", "content-type": "application/json" },
        payload: JSON.stringify(order(world.a.shops[0]!, (i % 3) + 1)),
      })),
      Array.from({ length: 6 }, () => ({
        method: "POST",
        url: "/admin/v1/partners",
        headers: { ...admin(), "content-type": "application/json" },
        payload: JSON.stringify({ id: "race-partner", name: "Race" }),
      })),
      Array.from({ length: 6 }, () => ({
        method: "POST",
        url: `/admin/v1/partners/${world.target.id}/shops`,
        headers: { ...admin(), "content-type": "application/json" },
        payload: JSON.stringify({ id: "race-shop", name: "Race" }),
      })),
      ["accepted", "cancelled", "accepted", "preparing", "cancelled"].map((status) => ({
        method: "PATCH",
        url: `/v1/orders/${world.orderIds[0]}`,
        headers: { ...backend, "content-type": "application/json" },
        payload: JSON.stringify({ status }),
      })),
      // (Not here yet: concurrent certificate registrations of one fingerprint; see the report.)
    ];
    for (const batch of batches) {
      const responses = await Promise.all(batch.map((r) => t.app.inject(r)));
      for (const [i, response] of responses.entries()) {
        const where = `${response.statusCode} for ${describeRequest(batch[i]!)}: ${response.body.slice(0, 500)}`;
        expect(response.statusCode, where).toBeLessThan(500);
        if (response.statusCode >= 400) {
          expect(String(response.headers["content-type"]), where).toMatch(/^application\/problem\+json/);
          expect(ERROR_CODES, where).toContain(JSON.parse(response.body).code);
        }
      }
      const created = responses.filter((r) => r.statusCode === 201).length;
      if (batch[0]!.method === "POST") expect(created, describeRequest(batch[0]!)).toBe(1);
    }
    [state.rows] = (await t.db.query(SNAPSHOT_SQL)) as [Row];
  });

  const runRefusedPaths = async () => {
    for (const op of OPERATIONS) {
      const auth = op.area === "admin" ? admin() : bearer(world.a.backend.secret);
      for (const bad of [...MALFORMED_PATHS, "9".repeat(MAX_PARAM_LENGTH + 1)]) {
        const url = op.pathParams.length > 0 ? op.path.replace(/\{\w+\}/, bad) : `${op.path}/${bad}`;
        await check({ method: op.method, url, headers: auth });
      }
    }
  };
  if (KNOWN_ISSUE_FRAMEWORK_ERRORS) {
    it.fails(
      "KNOWN ISSUE: malformed and over-long paths get problem+json (needs frameworkErrors in app.ts)",
      runRefusedPaths,
    );
  } else {
    it("malformed and over-long paths get problem+json", runRefusedPaths);
  }

  const families: [string, (op: Operation) => boolean][] = [
    ["partner", (op) => op.area === "partner"],
    ["admin", (op) => op.area === "admin"],
  ];
  for (const [family, member] of families) {
    it(`random requests at every ${family} operation`, async () => {
      const ops = OPERATIONS.filter(member);
      const numRuns = Math.max(20, Math.ceil(FAMILY_RUNS / ops.length));
      for (const [index, op] of ops.entries()) {
        await fc.assert(fc.asyncProperty(request(op, world), check), { numRuns, seed: BASE_SEED + index });
      }
    }, 120_000);
  }

  it("random methods and paths", async () => {
    const methods = fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS");
    const anyRequest = fc
      .tuple(fc.constantFrom(...OPERATIONS), methods)
      .chain(([op, method]) => request(op, world).map((r) => ({ ...r, method })));
    await fc.assert(fc.asyncProperty(anyRequest, check), {
      numRuns: Math.ceil(FAMILY_RUNS / 4),
      seed: BASE_SEED - 1,
    });
  }, 120_000);
});
