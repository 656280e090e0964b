/**
 * Writes the published contract into schemas/ from the same zod schemas the
 * code validates with: `npm run schemas` regenerates, `npm run schemas --
 * --check` exits 1 when a committed file is stale (CI runs the test that
 * does the same check).
 *
 * The app is built with stub dependencies: no database, no sockets. Output
 * is deterministic: components no operation references are dropped, paths,
 * methods, responses and components are sorted, and schema bodies keep the
 * order they are declared in (that order is documentation).
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import pino from "pino";
import { stringify as toYaml } from "yaml";
import { z } from "zod";
import { buildHttpApp, type HttpAppDeps } from "../src/api/app.ts";
import { cursorSchema, orderEventSchema, partnerStatusSchema } from "../src/domain/events.ts";
import { orderSchema } from "../src/domain/orders.ts";
import { webhookEndpointStatusMessageSchema } from "../src/domain/webhooks.ts";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const OPENAPI_PATH = join(ROOT, "schemas", "openapi.json");
export const ASYNCAPI_PATH = join(ROOT, "schemas", "asyncapi.yaml");

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** A dependency that must never be used while generating: any call is a bug. */
const stub = <T extends object>(name: string): T =>
  new Proxy({} as T, {
    get: (_target, property) => {
      if (property === "then") return undefined; // not a thenable
      return () => {
        throw new Error(`generate-schemas: stub ${name}.${String(property)} was called`);
      };
    },
  });

const stubDeps = (): HttpAppDeps => ({
  log: pino({ level: "silent" }),
  adminToken: "schema-generator",
  verifier: stub("verifier"),
  orders: stub("orders"),
  partners: stub("partners"),
  credentials: stub("credentials"),
  readEvents: () => Promise.reject(new Error("generate-schemas: readEvents was called")),
  readEventsText: () => Promise.reject(new Error("generate-schemas: readEventsText was called")),
  readiness: () => Promise.reject(new Error("generate-schemas: readiness was called")),
  deliveryStatus: () => Promise.reject(new Error("generate-schemas: deliveryStatus was called")),
  eventStream: {
    subscribeCommits: () => {
      throw new Error("generate-schemas: subscribeCommits was called");
    },
    heartbeatMs: 5_000,
    drainTimeoutMs: 10_000,
    maxStreamsPerPartner: 100,
  },
  webhooks: {
    store: stub("webhooks.store"),
    verifier: stub("webhooks.verifier"),
    guard: stub("webhooks.guard"),
    secretOverlapSeconds: 86_400,
  },
  version: "0.1.0",
});

const isObject = (value: Json | undefined): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const TOP_LEVEL_ORDER = [
  "openapi",
  "info",
  "jsonSchemaDialect",
  "servers",
  "tags",
  "security",
  "paths",
  "webhooks",
  "components",
];
const METHOD_ORDER = ["get", "put", "post", "patch", "delete", "head", "options", "trace"];

const sortKeys = (object: JsonObject, compare: (a: string, b: string) => number): JsonObject =>
  Object.fromEntries(
    Object.keys(object)
      .sort(compare)
      .map((key) => [key, object[key] as Json]),
  );

const byList = (list: string[]) => (a: string, b: string) => {
  const ia = list.indexOf(a);
  const ib = list.indexOf(b);
  return (ia === -1 ? list.length : ia) - (ib === -1 ? list.length : ib) || a.localeCompare(b, "en");
};
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Every `#/components/schemas/X` reachable from the paths, following refs between components. */
const reachableSchemas = (document: JsonObject): Set<string> => {
  const schemas =
    isObject(document.components) && isObject(document.components.schemas) ? document.components.schemas : {};
  const seen = new Set<string>();
  const visit = (node: Json | undefined) => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (isObject(node)) {
      for (const [key, value] of Object.entries(node)) {
        if (key === "$ref" && typeof value === "string" && value.startsWith("#/components/schemas/")) {
          const name = value.slice("#/components/schemas/".length);
          if (!seen.has(name)) {
            seen.add(name);
            visit(schemas[name]);
          }
        } else visit(value);
      }
    }
  };
  visit(document.paths);
  return seen;
};

/** The published form of the document: unreferenced components dropped, stable key order. */
export const normaliseOpenApi = (raw: unknown): JsonObject => {
  const document = JSON.parse(JSON.stringify(raw)) as JsonObject;
  const paths = isObject(document.paths) ? document.paths : {};
  const sortedPaths: JsonObject = {};
  for (const path of Object.keys(paths).sort(byName)) {
    const item = paths[path];
    if (!isObject(item)) continue;
    const operations: JsonObject = {};
    for (const [method, operation] of Object.entries(sortKeys(item, byList(METHOD_ORDER)))) {
      if (isObject(operation) && isObject(operation.responses)) {
        operation.responses = sortKeys(operation.responses, byName);
      }
      operations[method] = operation;
    }
    sortedPaths[path] = operations;
  }
  document.paths = sortedPaths;

  if (isObject(document.components)) {
    const used = reachableSchemas(document);
    const components = document.components;
    if (isObject(components.schemas)) {
      const schemas = components.schemas;
      components.schemas = Object.fromEntries(
        Object.keys(schemas)
          .filter((name) => used.has(name))
          .sort(byName)
          .map((name) => [name, schemas[name] as Json]),
      );
    }
    for (const [section, value] of Object.entries(components)) {
      if (isObject(value)) components[section] = sortKeys(value, byName);
    }
    document.components = sortKeys(components, byName);
  }
  return sortKeys(document, byList(TOP_LEVEL_ORDER));
};

export const serialise = (document: unknown): string => `${JSON.stringify(document, null, 2)}\n`;

/** Builds the app with stub dependencies and returns the OpenAPI document as it is published. */
export const generateOpenApi = async (): Promise<JsonObject> => {
  const app = await buildHttpApp(stubDeps());
  try {
    await app.ready();
    return normaliseOpenApi(app.swagger());
  } finally {
    await app.close();
  }
};

/** The shapes of the MQTT payloads as JSON Schema draft-07 (the AsyncAPI schema format), keyed by name. */
export const asyncApiSchemas = (): JsonObject => {
  const registry = z.registry<{ id: string }>();
  registry.add(orderEventSchema, { id: "OrderEvent" });
  registry.add(orderSchema, { id: "Order" });
  registry.add(cursorSchema, { id: "Cursor" });
  registry.add(partnerStatusSchema, { id: "PartnerStatus" });
  registry.add(webhookEndpointStatusMessageSchema, { id: "WebhookEndpointStatus" });
  const generated = z.toJSONSchema(registry, {
    target: "draft-7",
    io: "output",
    uri: (id) => `#/components/schemas/${id}`,
  }) as unknown as { schemas: Record<string, JsonObject> };
  const schemas: JsonObject = {};
  for (const name of Object.keys(generated.schemas).sort(byName)) {
    const { $schema: _dialect, $id: _id, ...schema } = generated.schemas[name]!;
    schemas[name] = schema;
  }
  return schemas;
};

const ref = (section: string, name: string): JsonObject => ({ $ref: `#/components/${section}/${name}` });
const MQTT_BINDING_VERSION = "0.2.0";
const mqttOperation = (qos: 0 | 1 | 2, retain: boolean): JsonObject => ({
  mqtt: { qos, retain, bindingVersion: MQTT_BINDING_VERSION },
});

/** The AsyncAPI 3.0 document of the MQTT contract, from brewcast's side: it sends events, cursors, status. */
export const generateAsyncApi = (): JsonObject => {
  const credentials = [ref("securitySchemes", "credential"), ref("securitySchemes", "clientCertificate")];
  const message = (name: string, title: string, summary: string, payload: JsonObject): JsonObject => ({
    name,
    title,
    summary,
    contentType: "application/json",
    payload,
  });
  return {
    asyncapi: "3.0.0",
    info: {
      title: "brewcast MQTT",
      version: "0.1.0",
      description:
        "Order events pushed to partners over MQTT 3.1.1. Push is the trigger, the ordered history " +
        "(`GET /v1/events`, see openapi.json) is the truth: dedupe by (partner, `seq`), detect gaps with " +
        "`seq` (per partner) and `prev_shop_seq` (per shop), and read the history after the last seq you " +
        "processed when you see one. Only brewcast publishes under `partners/…`, except a client's own " +
        "device status topic. Packets are at most BREWCAST_MAX_PACKET_BYTES (64 KiB by default).",
    },
    defaultContentType: "application/json",
    servers: {
      mqtt: {
        host: "{host}:{port}",
        protocol: "mqtt",
        protocolVersion: "3.1.1",
        description:
          "MQTT over TCP (BREWCAST_MQTT_PORT). MQTT 3.1 and 3.1.1 only: an MQTT 5 CONNECT gets return code 1.",
        variables: {
          host: { default: "127.0.0.1", description: "BREWCAST_HOST, or the address of your deployment." },
          port: { default: "1883", description: "BREWCAST_MQTT_PORT." },
        },
        security: credentials.slice(0, 1),
      },
      mqtts: {
        host: "{host}:{port}",
        protocol: "mqtts",
        protocolVersion: "3.1.1",
        description:
          "MQTT over TLS (BREWCAST_MQTTS_PORT, when set). With BREWCAST_TLS_CA set, a registered client certificate logs in too.",
        variables: {
          host: { default: "127.0.0.1", description: "BREWCAST_HOST, or the address of your deployment." },
          port: {
            default: "8883",
            description: "BREWCAST_MQTTS_PORT (no default: unset means no TLS listener).",
          },
        },
        security: credentials,
      },
      websocket: {
        host: "{host}:{port}",
        pathname: "/mqtt",
        protocol: "ws",
        description: "MQTT 3.1.1 over WebSocket on the HTTP port (BREWCAST_HTTP_PORT).",
        variables: {
          host: { default: "127.0.0.1", description: "BREWCAST_HOST, or the address of your deployment." },
          port: { default: "8080", description: "BREWCAST_HTTP_PORT." },
        },
        security: credentials.slice(0, 1),
      },
    },
    channels: {
      orderEvents: {
        address: "partners/{partner}/shops/{shop}/orders/{kind}",
        title: "Order events of one shop",
        description:
          "One event per message, the same JSON object as in `GET /v1/events`. Per partner in `seq` order, at least once; not retained. A persistent session (CleanSession=0) that comes back is sent the events it missed from the log, in `seq` order at its granted QoS (1 or 2; QoS 0 is not replayed), RETAIN=0, DUP=1 for what was in flight, then the live ones.",
        parameters: {
          partner: ref("parameters", "partner"),
          shop: ref("parameters", "shop"),
          kind: ref("parameters", "kind"),
        },
        messages: {
          orderCreated: ref("messages", "orderCreated"),
          orderStatusChanged: ref("messages", "orderStatusChanged"),
        },
      },
      partnerCursor: {
        address: "partners/{partner}/cursor",
        title: "The partner's cursor",
        description:
          "Retained: the latest seq published for the partner, updated at most once a second and never ahead of the events. Re-published every BREWCAST_WATERMARK_MS (5 s) with a fresh `published_at`.",
        parameters: { partner: ref("parameters", "partner") },
        messages: { cursor: ref("messages", "cursor") },
      },
      shopCursor: {
        address: "partners/{partner}/shops/{shop}/cursor",
        title: "A shop's cursor",
        description:
          "Retained: the latest seq published for events of this shop (a partner seq). Re-published as a watermark like the partner cursor.",
        parameters: { partner: ref("parameters", "partner"), shop: ref("parameters", "shop") },
        messages: { cursor: ref("messages", "cursor") },
      },
      partnerStatus: {
        address: "partners/{partner}/status",
        title: "The partner's state on the degradation ladder",
        description:
          'Retained `{ state, since }`. In `poll_only` events are not pushed (the cursors still move): poll `GET /v1/events`. Also, not retained, `{ type: "webhook_endpoint", … }` when one of the partner\'s webhook endpoints changes status.',
        parameters: { partner: ref("parameters", "partner") },
        messages: {
          partnerStatus: ref("messages", "partnerStatus"),
          webhookEndpointStatus: ref("messages", "webhookEndpointStatus"),
        },
      },
      deviceStatus: {
        address: "partners/{partner}/devices/{credential}/status",
        title: "A client's own presence",
        description:
          "The only topic a client may publish to: its own credential's, usually retained and as its will message. Any other publish closes the connection.",
        parameters: { partner: ref("parameters", "partner"), credential: ref("parameters", "credential") },
        messages: { deviceStatus: ref("messages", "deviceStatus") },
      },
    },
    operations: {
      sendOrderEvent: {
        action: "send",
        channel: { $ref: "#/channels/orderEvents" },
        title: "Publish an order event",
        summary:
          "Published by the bridge only, at the partner's QoS (1 unless configured 0 or 2), never retained.",
        messages: [
          { $ref: "#/channels/orderEvents/messages/orderCreated" },
          { $ref: "#/channels/orderEvents/messages/orderStatusChanged" },
        ],
        bindings: mqttOperation(1, false),
      },
      sendPartnerCursor: {
        action: "send",
        channel: { $ref: "#/channels/partnerCursor" },
        summary: "Published by the bridge after the events it covers, and as a watermark.",
        messages: [{ $ref: "#/channels/partnerCursor/messages/cursor" }],
        bindings: mqttOperation(1, true),
      },
      sendShopCursor: {
        action: "send",
        channel: { $ref: "#/channels/shopCursor" },
        summary: "Published by the bridge after the events it covers, and as a watermark.",
        messages: [{ $ref: "#/channels/shopCursor/messages/cursor" }],
        bindings: mqttOperation(1, true),
      },
      sendPartnerStatus: {
        action: "send",
        channel: { $ref: "#/channels/partnerStatus" },
        summary:
          "Published by the bridge when the partner's ladder state changes (and when the bridge takes the lead).",
        messages: [{ $ref: "#/channels/partnerStatus/messages/partnerStatus" }],
        bindings: mqttOperation(1, true),
      },
      sendWebhookEndpointStatus: {
        action: "send",
        channel: { $ref: "#/channels/partnerStatus" },
        summary:
          "Published by the webhook delivery when an endpoint's status changes (throttled, poll_only, disabled, active again), not retained.",
        messages: [{ $ref: "#/channels/partnerStatus/messages/webhookEndpointStatus" }],
        bindings: mqttOperation(1, false),
      },
      receiveDeviceStatus: {
        action: "receive",
        channel: { $ref: "#/channels/deviceStatus" },
        summary: "A client publishes its own presence, usually retained and as its will message.",
        messages: [{ $ref: "#/channels/deviceStatus/messages/deviceStatus" }],
        bindings: mqttOperation(1, true),
      },
    },
    components: {
      schemas: asyncApiSchemas(),
      messages: {
        orderCreated: message(
          "order.created",
          "Order created",
          "An order was created.",
          ref("schemas", "OrderEvent"),
        ),
        orderStatusChanged: message(
          "order.status_changed",
          "Order status changed",
          "An order moved to another status.",
          ref("schemas", "OrderEvent"),
        ),
        cursor: message(
          "cursor",
          "Cursor",
          "The latest seq published for a scope.",
          ref("schemas", "Cursor"),
        ),
        partnerStatus: message(
          "partner.status",
          "Partner status",
          "The partner's state on the degradation ladder.",
          ref("schemas", "PartnerStatus"),
        ),
        webhookEndpointStatus: message(
          "webhook_endpoint.status",
          "Webhook endpoint status",
          "One of the partner's webhook endpoints changed status.",
          ref("schemas", "WebhookEndpointStatus"),
        ),
        deviceStatus: {
          name: "device.status",
          title: "Device status",
          summary:
            "Whatever the client publishes about itself (for example `online` / `offline`); brewcast does not read it.",
          payload: { type: "string" },
        },
      },
      parameters: {
        partner: { description: "Partner id, `[a-z0-9-]{1,64}`." },
        shop: { description: "Shop id, `[a-z0-9-]{1,64}`, unique within its partner." },
        kind: {
          enum: ["created", "status_changed"],
          description: "`created` for order.created, `status_changed` for order.status_changed.",
        },
        credential: {
          description:
            "The publishing client's own credential id (its MQTT username), `cr-` and 20 characters of `[a-z2-7]`.",
        },
      },
      securitySchemes: {
        credential: {
          type: "userPassword",
          description:
            "Username = credential id, password = its secret. Bad credentials: CONNACK 4; revoked or suspended partner: CONNACK 5.",
        },
        clientCertificate: {
          type: "X509",
          description:
            "A TLS client certificate whose SHA-256 fingerprint is registered to a credential (MQTT over TLS with BREWCAST_TLS_CA).",
        },
      },
    },
  };
};

export const serialiseYaml = (document: unknown): string =>
  toYaml(document, { lineWidth: 0, aliasDuplicateObjects: false, sortMapEntries: false });

/** Every generated file, path → content. */
export const generateSchemaFiles = async (): Promise<Map<string, string>> =>
  new Map([
    [OPENAPI_PATH, serialise(await generateOpenApi())],
    [ASYNCAPI_PATH, serialiseYaml(generateAsyncApi())],
  ]);

const readOrNull = async (path: string): Promise<string | null> => {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
};

const main = async (argv: string[]): Promise<number> => {
  const check = argv.includes("--check");
  const unknown = argv.filter((arg) => arg !== "--check");
  if (unknown.length > 0) {
    process.stderr.write(`generate-schemas: unknown argument ${unknown.join(" ")}; usage: [--check]\n`);
    return 2;
  }
  const files = await generateSchemaFiles();
  const stale: string[] = [];
  for (const [path, content] of files) {
    const name = relative(ROOT, path);
    const current = await readOrNull(path);
    if (current === content) {
      process.stdout.write(`${name}: up to date\n`);
    } else if (check) {
      stale.push(name);
    } else {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content);
      process.stdout.write(`${name}: written\n`);
    }
  }
  if (stale.length > 0) {
    process.stderr.write(
      `generate-schemas: stale: ${stale.join(", ")}; run \`npm run schemas\` and commit the result\n`,
    );
    return 1;
  }
  return 0;
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
