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
import { buildHttpApp, type HttpAppDeps } from "../src/api/app.ts";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const OPENAPI_PATH = join(ROOT, "schemas", "openapi.json");

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
  readiness: () => Promise.reject(new Error("generate-schemas: readiness was called")),
  deliveryStatus: () => Promise.reject(new Error("generate-schemas: deliveryStatus was called")),
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

/** Every generated file, path → content. The AsyncAPI document joins here later. */
export const generateSchemaFiles = async (): Promise<Map<string, string>> =>
  new Map([[OPENAPI_PATH, serialise(await generateOpenApi())]]);

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
