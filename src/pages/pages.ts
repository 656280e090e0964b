/**
 * The browser pages: `/console` (operators, signed in with the admin token)
 * and `/kiosk` (a shop's order board for a device credential, MQTT over
 * WebSocket), with their scripts and the two libraries they load (uPlot, the
 * MQTT.js browser bundle) served from node_modules. No build step: the pages
 * are plain files in ./static, read when first asked for.
 *
 * Invariants: every answer carries the security headers below (no inline
 * script, no framing, no sniffing, no referrer); nothing here runs unless a
 * page is asked for, so the pages cost nothing while nobody has them open.
 * Their data comes only from the public and admin APIs.
 *
 * May import: node and fastify only. The composition root registers it
 * (src/app/http.ts) unless BREWCAST_CONSOLE=off.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyPluginAsync, FastifyReply } from "fastify";

export interface PagesOptions {
  /** BREWCAST_WATERMARK_MS: the kiosk tells silence from a lost link by it. */
  watermarkMs: number;
}

const STATIC_DIR = fileURLToPath(new URL("./static/", import.meta.url));
const require = createRequire(import.meta.url);
const packageFile = (name: string, file: string) =>
  path.join(path.dirname(require.resolve(`${name}/package.json`)), file);

/** Everything the pages may load: URL path → file and type. Nothing else is served. */
const ASSETS: Record<string, { file: string; type: string; cache: string }> = {
  "/pages/console.js": {
    file: path.join(STATIC_DIR, "console.js"),
    type: "text/javascript",
    cache: "no-cache",
  },
  "/pages/kiosk.js": { file: path.join(STATIC_DIR, "kiosk.js"), type: "text/javascript", cache: "no-cache" },
  "/pages/pages.css": { file: path.join(STATIC_DIR, "pages.css"), type: "text/css", cache: "no-cache" },
  "/pages/vendor/uPlot.iife.min.js": {
    file: packageFile("uplot", "dist/uPlot.iife.min.js"),
    type: "text/javascript",
    cache: "public, max-age=3600",
  },
  "/pages/vendor/uPlot.min.css": {
    file: packageFile("uplot", "dist/uPlot.min.css"),
    type: "text/css",
    cache: "public, max-age=3600",
  },
  "/pages/vendor/mqtt.min.js": {
    file: packageFile("mqtt", "dist/mqtt.min.js"),
    type: "text/javascript",
    cache: "public, max-age=3600",
  },
};

/**
 * Scripts from this origin only (no inline script, no eval); styles likewise (uPlot sizes its
 * elements through the CSSOM, which CSP allows); fetch, EventSource and WebSocket to this origin.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=()",
};

const pages: FastifyPluginAsync<PagesOptions> = async (app, options) => {
  const cache = new Map<string, Buffer>();
  const read = async (file: string): Promise<Buffer> => {
    let body = cache.get(file);
    if (!body) {
      body = await readFile(file);
      cache.set(file, body);
    }
    return body;
  };

  // Only the routes of this plugin: the API's JSON answers keep their own headers.
  app.addHook("onSend", async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.header(name, value);
    return payload;
  });

  const html = async (reply: FastifyReply, name: string) => {
    const text = (await read(path.join(STATIC_DIR, name))).toString("utf8");
    return reply
      .type("text/html; charset=utf-8")
      .header("cache-control", "no-cache")
      .send(text.replaceAll("{{WATERMARK_MS}}", String(options.watermarkMs)));
  };
  app.get("/console", { schema: { hide: true } }, (_request, reply) => html(reply, "console.html"));
  app.get("/kiosk", { schema: { hide: true } }, (_request, reply) => html(reply, "kiosk.html"));

  for (const [url, asset] of Object.entries(ASSETS)) {
    app.get(url, { schema: { hide: true } }, async (_request, reply) =>
      reply
        .type(`${asset.type}; charset=utf-8`)
        .header("cache-control", asset.cache)
        .send(await read(asset.file)),
    );
  }
};

export default pages;
