/**
 * How the pages are served, without a browser: the security headers on every
 * page and script, the libraries from node_modules, nothing else under
 * /pages/, BREWCAST_CONSOLE=off serving neither page, and the admin status
 * stream the console follows (admin token only, one message a second, at
 * most 20 open at once).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fetchJson } from "../support/http.ts";
import { SYSTEM_ADMIN_TOKEN, type System, startSystem } from "../support/system.ts";
import { waitFor } from "../support/wait.ts";

const ADMIN = { authorization: `Bearer ${SYSTEM_ADMIN_TOKEN}` };

describe("the pages, served", () => {
  let system: System;
  let off: System;
  beforeAll(async () => {
    [system, off] = await Promise.all([
      startSystem({ watermarkMs: 1234 }),
      startSystem({ env: { BREWCAST_CONSOLE: "off" } }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([system?.close(), off?.close()]);
  });

  it("serves /console, /kiosk and their files with CSP, nosniff, no framing and no referrer", async () => {
    for (const [path, type] of [
      ["/console", "text/html"],
      ["/kiosk", "text/html"],
      ["/pages/console.js", "text/javascript"],
      ["/pages/kiosk.js", "text/javascript"],
      ["/pages/pages.css", "text/css"],
      ["/pages/vendor/uPlot.iife.min.js", "text/javascript"],
      ["/pages/vendor/uPlot.min.css", "text/css"],
      ["/pages/vendor/mqtt.min.js", "text/javascript"],
    ] as const) {
      const response = await fetch(`${system.apiUrl}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("content-type"), path).toContain(type);
      const csp = response.headers.get("content-security-policy") ?? "";
      expect(csp, path).toContain("script-src 'self'");
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).not.toContain("unsafe-inline");
      expect(response.headers.get("x-content-type-options"), path).toBe("nosniff");
      expect(response.headers.get("referrer-policy"), path).toBe("no-referrer");
      const body = await response.text();
      if (type === "text/html") {
        // No inline script: every <script> has a src.
        expect(body.match(/<script(?![^>]*\ssrc=)[^>]*>/g), path).toBeNull();
      }
    }
    // The kiosk learns the watermark interval from the page.
    expect(await (await fetch(`${system.apiUrl}/kiosk`)).text()).toContain('data-watermark-ms="1234"');
    // The API's own answers are not the pages' business.
    const api = await fetch(`${system.apiUrl}/healthz`);
    expect(api.headers.get("content-security-policy")).toBeNull();
  });

  it("serves nothing else under /pages/", async () => {
    for (const path of [
      "/pages/../package.json",
      "/pages/pages.ts",
      "/pages/static/console.js",
      "/pages/x",
    ]) {
      const response = await fetch(`${system.apiUrl}${path}`);
      expect(response.status, path).toBe(404);
    }
  });

  it("BREWCAST_CONSOLE=off serves neither page", async () => {
    for (const path of ["/console", "/kiosk", "/pages/console.js", "/pages/vendor/mqtt.min.js"]) {
      expect((await fetch(`${off.apiUrl}${path}`)).status, path).toBe(404);
    }
  });

  it("lists partners for the admin token only", async () => {
    const partner = await system.seed(1);
    expect((await fetchJson(`${system.apiUrl}/admin/v1/partners`)).status).toBe(401);
    const listed = await fetchJson<{ partners: { id: string; state: string }[] }>(
      `${system.apiUrl}/admin/v1/partners`,
      { headers: ADMIN },
    );
    expect(listed.status).toBe(200);
    expect(listed.body.partners.map((p) => p.id)).toContain(partner.id);
  });

  it("streams every partner's status to the admin token, once a second", async () => {
    const partner = await system.seed(1);
    expect((await fetch(`${system.apiUrl}/admin/v1/status/stream`)).status).toBe(401);
    const wrong = await fetch(`${system.apiUrl}/admin/v1/status/stream`, {
      headers: { authorization: "Bearer not-the-token" },
    });
    expect(wrong.status).toBe(401);

    const controller = new AbortController();
    const response = await fetch(`${system.apiUrl}/admin/v1/status/stream`, {
      headers: ADMIN,
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    const messages: { at: string; partners: { partner_id: string; lag_events: number }[] }[] = [];
    let buffer = "";
    while (messages.length < 2) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = frame.split("\n").find((line) => line.startsWith("data: "));
        if (data) messages.push(JSON.parse(data.slice(6)));
      }
    }
    controller.abort();
    expect(messages).toHaveLength(2);
    const mine = messages[1]!.partners.find((p) => p.partner_id === partner.id);
    expect(mine).toMatchObject({
      partner_id: partner.id,
      state: "normal",
      head_seq: 0,
      lag_events: 0,
      connected_clients: { backend: 0, device: 0 },
    });
    const gap = Date.parse(messages[1]!.at) - Date.parse(messages[0]!.at);
    expect(gap).toBeGreaterThanOrEqual(500);
  });

  it("holds at most 20 status streams open at once; a closed one frees its place", async () => {
    const open = async () => {
      const controller = new AbortController();
      const response = await fetch(`${system.apiUrl}/admin/v1/status/stream`, {
        headers: ADMIN,
        signal: controller.signal,
      });
      return { status: response.status, close: () => controller.abort() };
    };
    const streams = await Promise.all(Array.from({ length: 20 }, open));
    expect(streams.map((stream) => stream.status)).toEqual(Array(20).fill(200));
    const refused = await fetchJson<{ code: string }>(`${system.apiUrl}/admin/v1/status/stream`, {
      headers: ADMIN,
    });
    expect(refused.status).toBe(429);
    expect(refused.body.code).toBe("RATE_LIMITED");
    streams[0]!.close();
    const again = await waitFor("a freed place", async () => {
      const stream = await open();
      if (stream.status === 200) return stream;
      return undefined;
    });
    for (const stream of [...streams.slice(1), again]) stream.close();
  });
});
