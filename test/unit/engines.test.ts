/**
 * The README says Node.js 20: every package `npm install` puts in
 * node_modules accepts the oldest Node the package allows (package.json's
 * `engines`), so npm warns about none (cookie@2 wanted Node 22; an npm
 * override pins cookie 1.1.1 under light-my-request, which uses only
 * `stringifySetCookie`, there since cookie 1.1). And fastify's inject, the
 * user of that cookie code, still sends cookies.
 */
import { readFileSync } from "node:fs";
import Fastify from "fastify";
import semver from "semver";
import { describe, expect, it } from "vitest";

const read = (path: string) => JSON.parse(readFileSync(new URL(`../../${path}`, import.meta.url), "utf8"));

describe("Node.js 20", () => {
  it("every locked package accepts the oldest Node that package.json allows", () => {
    const pkg = read("package.json") as { engines: { node: string } };
    const oldest = semver.minVersion(pkg.engines.node)!.version;
    expect(semver.major(oldest)).toBe(20);
    const lock = read("package-lock.json") as {
      packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
    };
    const refusing = Object.entries(lock.packages)
      .filter(([path]) => path !== "")
      .flatMap(([path, entry]) => {
        const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
        return range && !semver.satisfies(oldest, range) ? [`${path}@${entry.version}: node ${range}`] : [];
      });
    expect(refusing).toEqual([]);
  });

  it("fastify's inject sends cookies (light-my-request on the pinned cookie)", async () => {
    const app = Fastify();
    app.get("/", async (request) => ({ cookie: request.headers.cookie }));
    const response = await app.inject({ url: "/", cookies: { a: "b", c: "d e" } });
    expect(response.json()).toEqual({ cookie: "a=b; c=d%20e" });
    await app.close();
  });
});
