/**
 * The published OpenAPI document: current (regenerating changes nothing),
 * valid OpenAPI 3.1, complete (every served route, its auth and its
 * problem+json errors), and its Problem codes are exactly the registry's.
 */
import { readFile } from "node:fs/promises";
import { relative } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateOpenApi, OPENAPI_PATH, ROOT, serialise } from "../../scripts/generate-schemas.ts";
import { ERROR_CODES, ERRORS } from "../../src/domain/errors.ts";
import { createTestApp, type TestApp } from "../support/test-app.ts";

// biome-ignore lint/suspicious/noExplicitAny: the test walks an untyped JSON document
type Json = Record<string, any>;

const HIDDEN = ["/healthz", "/openapi.json"];
const HTTP_METHODS = ["get", "put", "post", "patch", "delete"];

/** `METHOD /path/{param}` for every route in Fastify's route tree, HEAD left out. */
const servedOperations = (tree: string): Set<string> => {
  const operations = new Set<string>();
  const stack: string[] = [];
  for (const line of tree.split("\n")) {
    const match = /^([│ ]*)[├└]── (\S+) \(([^)]+)\)$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    stack.length = depth;
    stack.push(match[2]!);
    const path = stack.join("").replace(/:(\w+)/g, "{$1}");
    for (const method of match[3]!.split(", ")) {
      if (method !== "HEAD") operations.add(`${method} ${path}`);
    }
  }
  return operations;
};

const documentedOperations = (document: Json): Set<string> =>
  new Set(
    Object.entries(document.paths as Json).flatMap(([path, item]) =>
      Object.keys(item as Json)
        .filter((method) => HTTP_METHODS.includes(method))
        .map((method) => `${method.toUpperCase()} ${path}`),
    ),
  );

describe("schemas/openapi.json", () => {
  let committed: string;
  let fresh: Json;

  beforeAll(async () => {
    committed = await readFile(OPENAPI_PATH, "utf8");
    fresh = await generateOpenApi();
  });

  it("is current: regenerating it changes nothing", () => {
    const name = relative(ROOT, OPENAPI_PATH);
    expect(committed, `${name} is stale: run \`npm run schemas\` and commit it`).toBe(serialise(fresh));
  });

  it("is deterministic", async () => {
    expect(serialise(await generateOpenApi())).toBe(serialise(fresh));
  });

  it("is a valid OpenAPI 3.1 document", async () => {
    const validator = new Validator();
    const result = await validator.validate(JSON.parse(committed));
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
  });

  it("lists exactly the registry's codes in the Problem schema", () => {
    const problem = fresh.components.schemas.Problem;
    expect(new Set(problem.properties.code.enum)).toEqual(new Set(ERROR_CODES));
    expect(problem.properties.code.enum).toHaveLength(ERROR_CODES.length);
  });

  it("names the shared shapes under components.schemas", () => {
    const names = Object.keys(fresh.components.schemas);
    for (const name of [
      "Order",
      "OrderEvent",
      "Problem",
      "Partner",
      "Shop",
      "Credential",
      "CreatedCredential",
    ]) {
      expect(names).toContain(name);
    }
    expect(names.filter((name) => name.endsWith("Input"))).toEqual([]);
    expect(Object.keys(fresh.components.securitySchemes).sort()).toEqual(["admin", "partner"]);
  });

  it("describes the requests a webhook receiver gets (OpenAPI 3.1 `webhooks`)", () => {
    expect(Object.keys(fresh.webhooks).sort()).toEqual(["order-event", "webhook-verification"]);
    const event = fresh.webhooks["order-event"].post;
    expect(event.requestBody.content["application/json"].schema).toEqual({
      $ref: "#/components/schemas/OrderEvent",
    });
    expect(event.parameters.map((p: Json) => p.name)).toEqual([
      "webhook-id",
      "webhook-timestamp",
      "webhook-signature",
    ]);
  });

  describe("against the served routes", () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp("pglite");
    });
    afterAll(async () => t.close());

    it("documents every route except the hidden ones, and nothing else", () => {
      const served = servedOperations(t.app.printRoutes({ commonPrefix: false }));
      expect(served.size).toBeGreaterThan(10);
      const expected = new Set([...served].filter((op) => !HIDDEN.includes(op.split(" ")[1]!)));
      expect(documentedOperations(fresh)).toEqual(expected);
      for (const path of HIDDEN) expect(fresh.paths[path]).toBeUndefined();
    });

    it("serves the same operations at /openapi.json", async () => {
      const response = await t.app.inject({ url: "/openapi.json" });
      expect(response.statusCode).toBe(200);
      expect(documentedOperations(response.json())).toEqual(documentedOperations(fresh));
    });
  });

  it("documents auth, parameters, bodies and problem+json errors on every API route", () => {
    for (const [path, item] of Object.entries(fresh.paths as Json)) {
      if (!path.startsWith("/v1") && !path.startsWith("/admin/v1")) continue;
      for (const [method, operation] of Object.entries(item as Json)) {
        const where = `${method.toUpperCase()} ${path}`;
        expect(operation.security, where).toEqual([{ [path.startsWith("/v1") ? "partner" : "admin"]: [] }]);
        expect(operation.summary, where).toBeTruthy();

        const pathParams = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
        const declared = (operation.parameters ?? [])
          .filter((p: Json) => p.in === "path")
          .map((p: Json) => p.name);
        expect(declared.sort(), `${where} path parameters`).toEqual(pathParams.sort());
        for (const parameter of operation.parameters ?? []) {
          expect(parameter.schema, `${where} ${parameter.in} ${parameter.name}`).toBeTypeOf("object");
        }
        // Actions with nothing to say have no body: suspend, resume, a stream ticket, rotate, verify.
        if (
          ["post", "patch", "put"].includes(method) &&
          !/\/(suspend|resume|rotate-secret|verify|stream\/tickets)$/.test(path)
        ) {
          expect(operation.requestBody?.content?.["application/json"]?.schema, `${where} body`).toBeTruthy();
        }

        const statuses = Object.keys(operation.responses);
        expect(
          statuses.some((s) => s.startsWith("2")),
          `${where} success response`,
        ).toBe(true);
        for (const status of ["400", "401", "500"]) expect(statuses, where).toContain(status);
        for (const status of statuses.filter((s) => Number(s) >= 400)) {
          const content = operation.responses[status].content;
          expect(Object.keys(content), `${where} ${status}`).toEqual(["application/problem+json"]);
          expect(content["application/problem+json"].schema).toEqual({
            $ref: "#/components/schemas/Problem",
          });
          const codes = ERROR_CODES.filter((code) => String(ERRORS[code].status) === status);
          expect(operation.responses[status].description, `${where} ${status}`).toBe(codes.join(", "));
        }
        for (const status of statuses.filter((s) => s.startsWith("2"))) {
          // JSON, but for the event stream: text/event-stream.
          const type = path === "/v1/events/stream" ? "text/event-stream" : "application/json";
          expect(operation.responses[status].content[type].schema, `${where} ${status}`).toBeTruthy();
        }
      }
    }
  });
});
