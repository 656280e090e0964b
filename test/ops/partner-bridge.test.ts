/**
 * mosquitto/partner-bridge.conf, proven with a real Mosquitto: brewcast runs
 * in-process, the shipped file gets the partner's address, credential and id
 * on its marked lines (nothing else changes), a `mosquitto -c` loads it as a
 * drop-in, and `mosquitto_sub` on that Mosquitto sees the partner's events in
 * seq order and the retained cursor, retained.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningBrewcast } from "../../src/main.ts";
import { uniqueId } from "../support/fixtures.ts";
import {
  hasCommand,
  mosquittoSub,
  type RunningMosquitto,
  type RunningSub,
  runMosquitto,
  scratchDir,
  writeConfig,
} from "../support/mosquitto.ts";
import { freePort } from "../support/ports.ts";
import { type System, startSystem } from "../support/system.ts";
import { waitFor } from "../support/wait.ts";
import { EDIT_MARKERS, markedLines, readShipped, renderPartnerBridge } from "./mosquitto.ts";

const SHIPPED = readShipped("partner-bridge.conf");
const directives = (text: string): string[] =>
  text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));

describe("mosquitto/partner-bridge.conf as shipped", () => {
  it("marks the five lines a partner edits, each directly above a directive", () => {
    const marked = markedLines(SHIPPED);
    expect(new Set(marked.map((m) => m.marker))).toEqual(new Set(EDIT_MARKERS));
    expect(marked.map((m) => m.line.split(" ")[0])).toEqual([
      "connection",
      "address",
      "remote_username",
      "remote_password",
      "remote_clientid",
      "topic",
    ]);
  });

  it("speaks MQTT 3.1.1 to brewcast with no $SYS notifications and a persistent, fixed-id session", () => {
    const lines = directives(SHIPPED);
    for (const line of [
      "bridge_protocol_version mqttv311",
      "notifications false",
      "try_private true",
      "cleansession false",
      "topic partners/acme/# in 1",
    ]) {
      expect(lines).toContain(line);
    }
    expect(lines.some((line) => /^local_clientid \S+$/.test(line))).toBe(true);
    expect(lines.some((line) => /^remote_clientid \S+$/.test(line))).toBe(true);
    // Exactly one bridge, and nothing global: it must work as an include_dir drop-in.
    expect(lines.filter((line) => line.startsWith("connection "))).toHaveLength(1);
    expect(lines.some((line) => /^(listener|port|allow_anonymous|persistence|user) /.test(line))).toBe(false);
  });

  it("renders only the marked lines", () => {
    const rendered = renderPartnerBridge(SHIPPED, {
      partner: "zz-partner",
      address: "127.0.0.1:1",
      username: "cr-x",
      password: "bcs_x",
      clientId: "c",
    });
    const before = SHIPPED.split("\n");
    const after = rendered.split("\n");
    const changed = before.flatMap((line, i) => (line === after[i] ? [] : [i]));
    expect(changed.sort()).toEqual(markedLines(SHIPPED).map((m) => m.index));
    expect(directives(rendered).join("\n")).not.toMatch(/REPLACE-ME|acme/);
    expect(directives(rendered)).toContain("topic partners/zz-partner/# in 1");
  });

  it("has no comment after a value (Mosquitto would read it as part of the value)", () => {
    for (const line of directives(SHIPPED)) {
      if (line.startsWith("topic ")) continue; // `#` is the wildcard there
      expect(line, line).not.toContain("#");
    }
  });
});

const missing = ["mosquitto", "mosquitto_sub"].filter((command) => !hasCommand(command));
if (missing.length > 0) {
  process.stdout.write(
    `test/ops/partner-bridge.test.ts: ${missing.join(", ")} not installed (Debian: mosquitto mosquitto-clients); real-bridge test skipped\n`,
  );
}

describe.skipIf(missing.length > 0)(
  "a partner's Mosquitto bridging brewcast with partner-bridge.conf",
  () => {
    const ADMIN_TOKEN = "partner-bridge-test-admin-token";
    let system: System | undefined;
    let brewcast: RunningBrewcast;
    let base: string;
    let scratch: ReturnType<typeof scratchDir>;
    let mosquitto: RunningMosquitto | undefined;
    let localPort: number;
    const subs: RunningSub[] = [];
    const partner = uniqueId("acme");
    const shops = ["downtown", "airport"];
    let secret: string;

    const call = async <T>(method: string, path: string, token: string, body?: unknown): Promise<T> => {
      const response = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
      return JSON.parse(text) as T;
    };

    beforeAll(async () => {
      system = await startSystem({ adminToken: ADMIN_TOKEN, watermarkMs: 300 });
      brewcast = system.running;
      base = `http://127.0.0.1:${brewcast.ports.http}`;

      await call("POST", "/admin/v1/partners", ADMIN_TOKEN, { id: partner, name: "Acme Coffee" });
      for (const shop of shops) {
        await call("POST", `/admin/v1/partners/${partner}/shops`, ADMIN_TOKEN, { id: shop, name: shop });
      }
      const credential = await call<{ id: string; secret: string }>(
        "POST",
        `/admin/v1/partners/${partner}/credentials`,
        ADMIN_TOKEN,
        { kind: "backend" },
      );
      secret = credential.secret;

      scratch = scratchDir();
      localPort = await freePort();
      const rendered = renderPartnerBridge(SHIPPED, {
        partner,
        address: `127.0.0.1:${brewcast.ports.mqtt}`,
        username: credential.id,
        password: credential.secret,
        clientId: `${partner}-mosquitto-test`,
      });
      // The partner's own broker: a local listener, and the bridge file as an include_dir drop-in.
      const { mkdirSync } = await import("node:fs");
      mkdirSync(join(scratch.dir, "conf.d"), { mode: 0o755 });
      writeConfig(join(scratch.dir, "conf.d", "brewcast.conf"), rendered);
      const main = writeConfig(
        join(scratch.dir, "mosquitto.conf"),
        [
          `listener ${localPort} 127.0.0.1`,
          "allow_anonymous true",
          "log_dest stderr",
          `include_dir ${join(scratch.dir, "conf.d")}`,
          "",
        ].join("\n"),
      );
      mosquitto = await runMosquitto(main, localPort);
    });

    afterAll(async () => {
      for (const sub of subs) await sub.stop();
      await mosquitto?.stop();
      await system?.close();
      scratch?.remove();
    });

    it("delivers the partner's events in seq order, and the cursor retained", async () => {
      const live = mosquittoSub(localPort, [`partners/${partner}/#`]);
      subs.push(live);
      // The bridge's subscription on brewcast is live once a watermark cursor crosses it.
      await waitFor(
        `a watermark through the bridge (mosquitto: ${mosquitto?.output()})`,
        () => live.messages.some((m) => m.topic === `partners/${partner}/cursor`),
        15_000,
      );

      const orders: { id: string }[] = [];
      for (let i = 0; i < 12; i++) {
        orders.push(
          await call<{ id: string }>("POST", "/v1/orders", secret, {
            shop_id: shops[i % shops.length],
            items: [{ sku: "latte", quantity: 1 + (i % 3) }],
          }),
        );
      }
      await call("PATCH", `/v1/orders/${orders[0]!.id}`, secret, { status: "accepted" });
      const head = 13;

      const events = () =>
        live.messages
          .filter((m) => /\/orders\/(created|status_changed)$/.test(m.topic))
          .map((m) => ({
            topic: m.topic,
            event: JSON.parse(m.payload) as { seq: number; partner_id: string },
          }));
      await waitFor(
        `${head} events through the bridge`,
        () => new Set(events().map((e) => e.event.seq)).size >= head,
      );
      const seqs = events().map((e) => e.event.seq);
      // At least once, in order: never a step back, and every seq from 1 to the head.
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThanOrEqual(seqs[i - 1]!);
      expect([...new Set(seqs)]).toEqual(Array.from({ length: head }, (_, i) => i + 1));
      expect(events().every((e) => e.event.partner_id === partner)).toBe(true);
      expect(events().at(-1)!.topic).toBe(`partners/${partner}/shops/${shops[0]}/orders/status_changed`);

      // A subscriber that connects afterwards gets the cursor from the partner's Mosquitto, retained.
      let lastSeen: unknown;
      const cursor = await waitFor(
        () =>
          `the retained cursor at the head (last seen: ${JSON.stringify(lastSeen)}; live: ${JSON.stringify(live.messages.filter((m) => m.topic.endsWith("/cursor")).slice(-3))})`,
        async () => {
          const late = mosquittoSub(localPort, [`partners/${partner}/cursor`], ["-C", "1", "-W", "5"]);
          subs.push(late);
          await late.exited;
          const message = late.messages[0];
          lastSeen = message ?? late.output();
          return message && (JSON.parse(message.payload) as { seq: number }).seq === head
            ? message
            : undefined;
        },
      );
      expect(cursor.retain).toBe(true);

      const shopCursors = mosquittoSub(
        localPort,
        [`partners/${partner}/shops/+/cursor`],
        ["-C", "2", "-W", "5"],
      );
      subs.push(shopCursors);
      await shopCursors.exited;
      expect(shopCursors.messages.map((m) => m.topic).sort()).toEqual(
        shops.map((shop) => `partners/${partner}/shops/${shop}/cursor`).sort(),
      );
      expect(shopCursors.messages.every((m) => m.retain)).toBe(true);
    });
  },
);
