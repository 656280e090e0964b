/**
 * Contract test: a real brewcast (API, embedded broker, bridge) in this
 * process, driven through its public interfaces only (the admin API, the
 * partner API, MQTT), and every payload it produced validated against the
 * published documents read from disk: MQTT messages against
 * schemas/asyncapi.yaml (channel by topic, then its messages' payloads),
 * HTTP responses against schemas/openapi.json (the operation, the status,
 * the content type and the body schema). Every documented operation is
 * exercised with a success, and the problem+json errors we can provoke.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { ROOT } from "../../scripts/generate-schemas.ts";
import type { RunningBrewcast } from "../../src/main.ts";
import { openSse } from "../stream/sse-client.ts";
import { type System, startSystem } from "../support/system.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookReceiver } from "../support/webhook-receiver.ts";

// biome-ignore lint/suspicious/noExplicitAny: the test walks untyped JSON documents
type Json = any;

const ADMIN_TOKEN = `contract-admin-${randomBytes(8).toString("hex")}`;

/** A JSON pointer fragment as a `$ref` wants it: `~`/`/` escaped, then URI-encoded. */
const pointer = (...tokens: string[]): string =>
  tokens.map((t) => encodeURIComponent(t.replaceAll("~", "~0").replaceAll("/", "~1"))).join("/");

interface Captured {
  topic: string;
  payload: string;
  retain: boolean;
}

describe("the running system matches the published contract", { timeout: 120_000 }, () => {
  let system: System | undefined;
  let running: RunningBrewcast;
  let base: string;
  let openapi: Json;
  let asyncapi: Json;
  const openapiAjv = new Ajv2020({ strict: false, allErrors: true });
  const asyncapiAjv = new Ajv({ strict: false, allErrors: true });
  const validators = new Map<string, ValidateFunction>();
  /** `METHOD /path/{param}` of every operation answered with a 2xx that validated. */
  const succeeded = new Set<string>();
  const failedStatuses = new Set<number>();
  /** A device credential of shop `north`, created by the first test. */
  let device: Json;

  beforeAll(async () => {
    openapi = JSON.parse(await readFile(join(ROOT, "schemas", "openapi.json"), "utf8"));
    asyncapi = parseYaml(await readFile(join(ROOT, "schemas", "asyncapi.yaml"), "utf8"));
    addFormats.default(openapiAjv);
    addFormats.default(asyncapiAjv);
    openapiAjv.addSchema({ ...openapi, $id: "https://brewcast.invalid/openapi.json" });
    asyncapiAjv.addSchema({
      $id: "https://brewcast.invalid/asyncapi.json",
      components: { schemas: asyncapi.components.schemas },
    });

    system = await startSystem({
      adminToken: ADMIN_TOKEN,
      env: { BREWCAST_WEBHOOK_ALLOW_NETS: "127.0.0.0/8" },
    });
    running = system.running;
    base = `http://127.0.0.1:${running.ports.http}`;
  }, 120_000); // PGlite start and migrations on a loaded two-core machine

  afterAll(async () => {
    await system?.close();
  });

  const validator = (ajv: Ajv | Ajv2020, ref: string): ValidateFunction => {
    let validate = validators.get(ref);
    if (!validate) {
      validate = ajv.compile({ $ref: ref });
      validators.set(ref, validate);
    }
    return validate;
  };

  const expectValid = (validate: ValidateFunction, data: unknown, where: string) => {
    const ok = validate(data);
    expect(ok ? [] : validate.errors, `${where}: ${JSON.stringify(data).slice(0, 400)}`).toEqual([]);
  };

  /**
   * Calls one documented operation (`path` is the OpenAPI template) and checks the response
   * against the document: the status is documented, the content type is the documented one,
   * the body validates against its schema. Returns the parsed body.
   */
  const call = async (
    method: string,
    template: string,
    options: {
      params?: Record<string, string>;
      query?: Record<string, string | number>;
      token?: string | null;
      body?: unknown;
      rawBody?: string;
      headers?: Record<string, string>;
      expect: number;
    },
  ): Promise<Json> => {
    const path = template.replace(/\{(\w+)\}/g, (_m, name: string) =>
      encodeURIComponent(options.params![name]!),
    );
    const url = new URL(path, base);
    for (const [key, value] of Object.entries(options.query ?? {})) url.searchParams.set(key, String(value));
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? ADMIN_TOKEN : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | undefined = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers["content-type"] ??= "application/json";
    }
    const response = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await response.text();
    const where = `${method} ${template} → ${response.status}`;
    expect(response.status, `${where}: ${text.slice(0, 300)}`).toBe(options.expect);

    const operation = openapi.paths[template]?.[method.toLowerCase()];
    expect(operation, `${method} ${template} is documented`).toBeDefined();
    const documented = operation.responses[String(response.status)];
    expect(documented, `${where} is a documented status`).toBeDefined();
    const [contentType] = Object.keys(documented.content);
    expect(response.headers.get("content-type")?.split(";")[0], where).toBe(contentType);
    const data = JSON.parse(text);
    const ref = `https://brewcast.invalid/openapi.json#/${pointer("paths", template, method.toLowerCase(), "responses", String(response.status), "content", contentType!, "schema")}`;
    expectValid(validator(openapiAjv, ref), data, where);
    if (response.status < 300) succeeded.add(`${method} ${template}`);
    else {
      failedStatuses.add(response.status);
      expect(documented.description.split(", "), where).toContain(data.code);
      expect(data.status, where).toBe(response.status);
    }
    return data;
  };

  /** The AsyncAPI channel whose address matches a concrete topic, with its parameters. */
  const channelFor = (topic: string): { name: string; channel: Json } | undefined => {
    for (const [name, channel] of Object.entries(asyncapi.channels as Record<string, Json>)) {
      const pattern = new RegExp(`^${(channel.address as string).replace(/\{(\w+)\}/g, "(?<$1>[^/]+)")}$`);
      const match = pattern.exec(topic);
      if (!match) continue;
      for (const [parameter, value] of Object.entries(match.groups ?? {})) {
        const declared = resolve(channel.parameters[parameter]);
        if (declared.enum) expect(declared.enum, `${topic} ${parameter}`).toContain(value);
      }
      return { name, channel };
    }
    return undefined;
  };

  const resolve = (node: Json): Json => {
    if (!node?.$ref) return node;
    const path = (node.$ref as string).replace(/^#\//, "").split("/");
    return resolve(
      path.reduce((at: Json, key) => at[key.replaceAll("~1", "/").replaceAll("~0", "~")], asyncapi),
    );
  };

  /** Validates one captured MQTT message against its channel's messages; returns the message names that fit. */
  const validateMqtt = (message: Captured): string[] => {
    const found = channelFor(message.topic);
    expect(found, `${message.topic} is a channel of asyncapi.yaml`).toBeDefined();
    const { name, channel } = found!;
    const operation = Object.values(asyncapi.operations as Record<string, Json>).find(
      (op) => op.channel.$ref === `#/channels/${name}`,
    );
    // MQTT 3.1.1 sets RETAIN only on messages sent because of a new subscription: check those.
    if (message.retain) expect(operation.bindings.mqtt.retain, `${message.topic} retained`).toBe(true);
    const fits: string[] = [];
    const errors: unknown[] = [];
    for (const reference of Object.values(channel.messages as Record<string, Json>)) {
      const definition = resolve(reference);
      const payloadRef = definition.payload.$ref as string | undefined;
      const data =
        definition.contentType === "application/json" ? JSON.parse(message.payload) : message.payload;
      const validate = payloadRef
        ? validator(asyncapiAjv, `https://brewcast.invalid/asyncapi.json${payloadRef}`)
        : asyncapiAjv.compile(definition.payload);
      if (validate(data)) fits.push(definition.name);
      else errors.push(validate.errors);
    }
    expect(fits, `${message.topic}: ${message.payload} → ${JSON.stringify(errors)}`).not.toEqual([]);
    return fits;
  };

  it("validates real HTTP responses and MQTT payloads", async () => {
    // --- admin: a partner, two shops, credentials -------------------------------------------
    const partner = `contract-${randomBytes(3).toString("hex")}`;
    await call("POST", "/admin/v1/partners", { body: { id: partner, name: "Contract Coffee" }, expect: 201 });
    await call("POST", "/admin/v1/partners", { body: { id: partner, name: "Again" }, expect: 409 });
    await call("GET", "/admin/v1/partners/{partner}", { params: { partner }, expect: 200 });
    await call("GET", "/admin/v1/partners", { expect: 200 });
    await call("GET", "/admin/v1/partners/{partner}", {
      params: { partner: "no-such-partner" },
      expect: 404,
    });
    for (const shop of ["north", "south"]) {
      await call("POST", "/admin/v1/partners/{partner}/shops", {
        params: { partner },
        body: { id: shop, name: `Shop ${shop}` },
        expect: 201,
      });
    }
    await call("GET", "/admin/v1/partners/{partner}/shops", { params: { partner }, expect: 200 });
    const backend = await call("POST", "/admin/v1/partners/{partner}/credentials", {
      params: { partner },
      body: { kind: "backend" },
      expect: 201,
    });
    device = await call("POST", "/admin/v1/partners/{partner}/credentials", {
      params: { partner },
      body: { kind: "device", shop_id: "north" },
      expect: 201,
    });
    const spare = await call("POST", "/admin/v1/partners/{partner}/credentials", {
      params: { partner },
      body: { kind: "backend" },
      expect: 201,
    });
    await call("GET", "/admin/v1/partners/{partner}/credentials", { params: { partner }, expect: 200 });
    await call("POST", "/admin/v1/credentials/{id}/certificates", {
      params: { id: spare.id },
      body: { fingerprint_sha256: randomBytes(32).toString("hex") },
      expect: 200,
    });
    await call("POST", "/admin/v1/credentials/{id}/certificates", {
      params: { id: spare.id },
      body: { fingerprint_sha256: "not-hex" },
      expect: 400,
    });
    await call("DELETE", "/admin/v1/credentials/{id}", { params: { id: spare.id }, expect: 200 });
    await call("GET", "/admin/v1/partners/{partner}", {
      params: { partner },
      token: "wrong-token",
      expect: 401,
    });

    // --- MQTT: subscribe to everything of the partner, then publish our own status ---------------
    const captured: Captured[] = [];
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${running.ports.mqtt}`, {
      protocolVersion: 4,
      username: backend.id,
      password: backend.secret,
      clientId: `contract-${randomUUID()}`,
      reconnectPeriod: 0,
    });
    try {
      client.on("message", (topic, payload, packet) => {
        captured.push({ topic, payload: payload.toString("utf8"), retain: packet.retain });
      });
      await client.subscribeAsync(`partners/${partner}/#`, { qos: 1 });
      await client.publishAsync(`partners/${partner}/devices/${backend.id}/status`, "online", {
        qos: 1,
        retain: true,
      });

      // --- partner API: orders, changes, reads, and the errors ---------------------------------
      const token = backend.secret as string;
      const create = { shop_id: "north", items: [{ sku: "latte", quantity: 2 }] };
      const key = `contract-${randomUUID()}`;
      const order = await call("POST", "/v1/orders", {
        token,
        body: create,
        headers: { "idempotency-key": key },
        expect: 201,
      });
      await call("POST", "/v1/orders", {
        token,
        body: create,
        headers: { "idempotency-key": key },
        expect: 200,
      });
      await call("POST", "/v1/orders", {
        token,
        body: { ...create, items: [{ sku: "mocha", quantity: 1 }] },
        headers: { "idempotency-key": key },
        expect: 422,
      });
      const other = await call("POST", "/v1/orders", {
        token,
        body: { shop_id: "south", items: [{ sku: "flat-white", quantity: 1 }] },
        expect: 201,
      });
      await call("POST", "/v1/orders", { token, body: { shop_id: "north", items: [] }, expect: 400 });
      await call("POST", "/v1/orders", {
        token,
        rawBody: "shop_id=north",
        headers: { "content-type": "text/plain" },
        expect: 415,
      });
      await call("POST", "/v1/orders", {
        token,
        rawBody: JSON.stringify({ ...create, padding: "x".repeat(70_000) }),
        headers: { "content-type": "application/json" },
        expect: 413,
      });
      await call("POST", "/v1/orders", { token: null, body: create, expect: 401 });
      for (const status of ["accepted", "preparing", "ready"]) {
        await call("PATCH", "/v1/orders/{id}", {
          token,
          params: { id: order.id },
          body: { status },
          expect: 200,
        });
      }
      await call("PATCH", "/v1/orders/{id}", {
        token,
        params: { id: order.id },
        body: { status: "created" },
        expect: 409,
      });
      await call("PATCH", "/v1/orders/{id}", {
        token,
        params: { id: other.id },
        body: { status: "cancelled" },
        expect: 200,
      });
      await call("GET", "/v1/orders/{id}", { token, params: { id: order.id }, expect: 200 });
      await call("GET", "/v1/orders/{id}", { token, params: { id: randomUUID() }, expect: 404 });
      await call("GET", "/v1/orders/{id}", { token: device.secret, params: { id: other.id }, expect: 404 });
      await call("GET", "/v1/orders/{id}", { token, params: { id: "not-a-uuid" }, expect: 400 });
      await call("GET", "/v1/orders", { token, query: { shop_id: "north", limit: 10 }, expect: 200 });
      await call("GET", "/v1/orders/created-history", { token, query: { limit: 5 }, expect: 200 });
      await call("GET", "/v1/orders/created-history", { token, query: { newer_than: 0 }, expect: 200 });
      const events = await call("GET", "/v1/events", { token, query: { after: 0 }, expect: 200 });
      expect(events.events.length).toBe(6);
      await call("GET", "/v1/events", { token: device.secret, query: { after: 0 }, expect: 200 });
      await call("GET", "/v1/events", { token, query: { limit: 5000 }, expect: 400 });
      await call("GET", "/v1/events/stream", { token, query: { after: -1 }, expect: 400 });
      const { ticket } = await call("POST", "/v1/events/stream/tickets", { token, expect: 201 });
      // The stream: its documented content type, each event's data the documented OrderEvent.
      const stream = await openSse(`${base}/v1/events/stream?ticket=${encodeURIComponent(ticket)}`);
      const streamed = openapi.paths["/v1/events/stream"].get.responses["200"].content;
      expect(stream.status).toBe(200);
      expect(Object.keys(streamed)).toEqual([stream.headers["content-type"]!.split(";")[0]]);
      try {
        const found = await waitFor(
          "the streamed history",
          () => stream.events().length === 6 && stream.events(),
        );
        const eventRef = "https://brewcast.invalid/openapi.json#/components/schemas/OrderEvent";
        for (const event of found) expectValid(validator(openapiAjv, eventRef), event, "streamed event");
        expect(found).toEqual(events.events);
        succeeded.add("GET /v1/events/stream");
      } finally {
        stream.close();
      }
      await call("GET", "/readyz", { token: null, expect: 200 });

      // --- webhooks: the partner's endpoints and the operator's confirmation ----------------------
      const receiver = await startWebhookReceiver();
      try {
        const hook = await call("POST", "/v1/webhooks", {
          token,
          body: { url: receiver.url, types: ["order.created"], description: "contract" },
          expect: 201,
        });
        const id = { id: hook.id as string };
        await call("POST", "/v1/webhooks", {
          token: device.secret,
          body: { url: receiver.url },
          expect: 403,
        });
        await call("GET", "/v1/webhooks", { token, expect: 200 });
        await call("GET", "/v1/webhooks/{id}", { token, params: id, expect: 200 });
        await call("PATCH", "/v1/webhooks/{id}", {
          token,
          params: id,
          body: { description: "c2" },
          expect: 200,
        });
        await call("POST", "/v1/webhooks/{id}/verify", { token, params: id, expect: 200 });
        await call("POST", "/v1/webhooks/{id}/rotate-secret", { token, params: id, expect: 200 });
        await call("POST", "/v1/webhooks/{id}/replay", {
          token,
          params: id,
          body: { from_seq: 1 },
          expect: 200,
        });
        await call("GET", "/v1/webhooks/{id}/attempts", { token, params: id, expect: 200 });
        await call("GET", "/admin/v1/partners/{partner}/webhooks", { params: { partner }, expect: 200 });
        await call("GET", "/admin/v1/webhooks/{id}", { params: id, expect: 200 });
        await call("POST", "/admin/v1/webhooks/{id}/confirm", {
          params: id,
          body: { url: "https://elsewhere.example/hook" },
          expect: 409,
        });
        await call("POST", "/admin/v1/webhooks/{id}/confirm", {
          params: id,
          body: { url: receiver.url },
          expect: 200,
        });
        await call("POST", "/admin/v1/webhooks/{id}/disable", {
          params: id,
          body: { reason: "c" },
          expect: 200,
        });
        await call("POST", "/admin/v1/webhooks/{id}/enable", {
          params: id,
          body: { reason: "c" },
          expect: 200,
        });
        await call("GET", "/admin/v1/webhooks/{id}/audit", { params: id, expect: 200 });
        await call("DELETE", "/v1/webhooks/{id}", { token, params: id, expect: 200 });
      } finally {
        await receiver.close();
      }

      // --- ops: health, the ladder pin (a partner status message), the kill switch --------------
      await call("GET", "/admin/v1/partners/{partner}/health", { params: { partner }, expect: 200 });
      await call("PUT", "/admin/v1/partners/{partner}/state", {
        params: { partner },
        body: { state: "throttled", reason: "contract test" },
        expect: 200,
      });
      // Before the kill switch closes the connection: wait for every kind of message, including
      // the partner status the pin above makes the bridge publish.
      const deadline = Date.now() + 30_000;
      const seen = () => captured.map((m) => `${channelFor(m.topic)?.name} ${m.payload}`);
      while (Date.now() < deadline) {
        const all = seen();
        const has = (prefix: string) => all.some((line) => line.startsWith(prefix));
        if (
          ["orderEvents", "partnerCursor", "shopCursor", "deviceStatus"].every(has) &&
          has('partnerStatus {"state":"throttled"') &&
          all.filter((line) => line.startsWith("orderEvents")).length === 6
        )
          break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await call("DELETE", "/admin/v1/partners/{partner}/state/pin", { params: { partner }, expect: 200 });
      await call("POST", "/admin/v1/partners/{partner}/suspend", { params: { partner }, expect: 200 });
      await call("GET", "/v1/events", { token, expect: 403 });
      await call("POST", "/admin/v1/partners/{partner}/resume", { params: { partner }, expect: 200 });

      // Every documented operation answered with a success that matched the document.
      const documented = Object.entries(openapi.paths as Record<string, Json>).flatMap(([path, item]) =>
        Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
      );
      expect([...succeeded].sort()).toEqual(documented.sort());
      expect([...failedStatuses].sort()).toEqual([400, 401, 403, 404, 409, 413, 415, 422]);

      const names = new Set<string>();
      for (const message of captured) for (const name of validateMqtt(message)) names.add(name);
      expect([...names].sort()).toEqual([
        "cursor",
        "device.status",
        "order.created",
        "order.status_changed",
        "partner.status",
      ]);
    } finally {
      await client.endAsync(true);
    }

    // Retained messages, read fresh by a device of one shop after the kill switch was lifted.
    const retained: Captured[] = [];
    const reader = await mqtt.connectAsync(`mqtt://127.0.0.1:${running.ports.mqtt}`, {
      protocolVersion: 4,
      username: device.id,
      password: device.secret,
      clientId: `contract-${randomUUID()}`,
      reconnectPeriod: 0,
    });
    try {
      reader.on("message", (topic, payload, packet) => {
        retained.push({ topic, payload: payload.toString("utf8"), retain: packet.retain });
      });
      await reader.subscribeAsync(`partners/${partner}/shops/north/cursor`, { qos: 1 });
      // With a 200 ms watermark, live re-publications of the cursor arrive too (even before the
      // retained copy: Aedes streams retained messages after SUBACK): wait for the retained one.
      const deadline = Date.now() + 10_000;
      while (!retained.some((m) => m.retain) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect(retained.some((m) => m.retain)).toBe(true);
      for (const message of retained) expect(validateMqtt(message)).toEqual(["cursor"]);
    } finally {
      await reader.endAsync(true);
    }
  });

  // POST /v1/orders answers 404 for a shop the credential cannot see (an unknown shop, or another
  // shop for a device): the document must say so.
  it("POST /v1/orders documents its 404 (a shop the credential cannot see)", async () => {
    expect(device).toBeDefined();
    await call("POST", "/v1/orders", {
      token: device.secret,
      body: { shop_id: "south", items: [{ sku: "latte", quantity: 1 }] },
      expect: 404,
    });
  });
});
