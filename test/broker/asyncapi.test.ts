/**
 * The published AsyncAPI document: current (regenerating changes nothing),
 * deterministic, valid AsyncAPI 3.0 by @asyncapi/parser, and complete (one
 * channel for every topic of the grammar in src/domain/topics.ts, payload
 * schemas generated from the zod schemas the code uses).
 */
import { readFile } from "node:fs/promises";
import { relative } from "node:path";
import { DiagnosticSeverity, Parser } from "@asyncapi/parser";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  ASYNCAPI_PATH,
  asyncApiSchemas,
  generateAsyncApi,
  ROOT,
  serialiseYaml,
} from "../../scripts/generate-schemas.ts";
import { parseTopic } from "../../src/domain/topics.ts";

// biome-ignore lint/suspicious/noExplicitAny: the test walks an untyped document
type Json = Record<string, any>;

const SAMPLE: Record<string, string> = {
  partner: "acme",
  shop: "downtown",
  kind: "status_changed",
  credential: "cr-abcdefghijklmnopqrst",
};

describe("schemas/asyncapi.yaml", () => {
  let committed: string;
  let document: Json;

  beforeAll(async () => {
    committed = await readFile(ASYNCAPI_PATH, "utf8");
    document = parseYaml(committed);
  });

  it("is current: regenerating it changes nothing", () => {
    const name = relative(ROOT, ASYNCAPI_PATH);
    expect(committed, `${name} is stale: run \`npm run schemas\` and commit it`).toBe(
      serialiseYaml(generateAsyncApi()),
    );
  });

  it("is deterministic", () => {
    expect(serialiseYaml(generateAsyncApi())).toBe(serialiseYaml(generateAsyncApi()));
  });

  it("is a valid AsyncAPI 3.0 document for @asyncapi/parser", { timeout: 60_000 }, async () => {
    const { document: parsed, diagnostics } = await new Parser().parse(committed);
    const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
    expect(errors.map((d) => `${d.path.join(".")}: ${d.message}`)).toEqual([]);
    expect(parsed).toBeDefined();
    expect(parsed!.version()).toBe("3.0.0");
    expect(parsed!.channels().length).toBe(5);
    expect(parsed!.servers().get("mqtt")?.protocolVersion()).toBe("3.1.1");
  });

  it("would be refused by the parser if it were broken (the check can fail)", {
    timeout: 60_000,
  }, async () => {
    const broken = generateAsyncApi() as Json;
    broken.operations.sendOrderEvent.action = "publish"; // AsyncAPI 2 vocabulary
    const { diagnostics } = await new Parser().parse(serialiseYaml(broken));
    expect(diagnostics.some((d) => d.severity === DiagnosticSeverity.Error)).toBe(true);
  });

  it("has one channel per topic of the grammar, with its parameters", () => {
    const types = new Set<string>();
    for (const [name, channel] of Object.entries(document.channels as Json)) {
      const address: string = channel.address;
      const names = [...address.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
      expect(Object.keys(channel.parameters).sort(), name).toEqual([...names].sort());
      for (const parameter of names)
        expect(document.components.parameters[parameter], parameter).toBeDefined();
      const topic = address.replace(/\{(\w+)\}/g, (_m, parameter: string) => SAMPLE[parameter]!);
      const parsed = parseTopic(topic);
      expect(parsed, `${name}: ${topic}`).not.toBeNull();
      types.add(parsed!.type);
    }
    expect([...types].sort()).toEqual([
      "device_status",
      "order_event",
      "partner_cursor",
      "partner_status",
      "shop_cursor",
    ]);
    expect(document.components.parameters.kind.enum).toEqual(["created", "status_changed"]);
  });

  it("publishes the zod-generated payload schemas and the MQTT bindings", () => {
    expect(document.components.schemas).toEqual(asyncApiSchemas());
    expect(Object.keys(document.components.schemas)).toEqual([
      "Cursor",
      "Order",
      "OrderEvent",
      "PartnerStatus",
      "WebhookEndpointStatus",
    ]);
    const bindings = (operation: string) => document.operations[operation].bindings.mqtt;
    expect(bindings("sendOrderEvent")).toMatchObject({ qos: 1, retain: false });
    expect(bindings("sendWebhookEndpointStatus")).toMatchObject({ qos: 1, retain: false });
    for (const operation of ["sendPartnerCursor", "sendShopCursor", "sendPartnerStatus"]) {
      expect(bindings(operation), operation).toMatchObject({ qos: 1, retain: true });
    }
    expect(document.operations.receiveDeviceStatus.action).toBe("receive");
  });
});
