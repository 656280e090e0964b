/**
 * Every TypeScript example in the README runs, as written, against a real
 * brewcast: each ```ts block follows a `<!-- example:NAME -->` marker, is
 * written to a scratch directory as an ES module (its import of the SDK pointed at this
 * checkout) and run with tsx in a child process, like a reader would.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/generate-schemas.ts";
import { buildWebhookMessageId } from "../../src/domain/webhooks.ts";
import type { RunningBrewcast } from "../../src/main.ts";
import { newWebhookSecret } from "../../src/store/webhooks.ts";
import { createAddressGuard, parseAllowNets } from "../../src/webhooks/address-guard.ts";
import { createWebhookSender } from "../../src/webhooks/sender.ts";
import { sendVerification } from "../../src/webhooks/verification.ts";
import { freePort } from "../support/ports.ts";
import { type System, startSystem } from "../support/system.ts";
import { waitFor as waitUntil } from "../support/wait.ts";

const ADMIN_TOKEN = `readme-admin-${randomBytes(8).toString("hex")}`;
const TSX = join(ROOT, "node_modules", "tsx", "dist", "cli.mjs");
const SDK = pathToFileURL(join(ROOT, "src", "client", "index.ts")).href;

/** The README's ```ts blocks by the name of the marker before them. */
const readmeExamples = async (): Promise<{ examples: Map<string, string>; tsBlocks: number }> => {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const examples = new Map<string, string>();
  for (const match of readme.matchAll(/<!-- example:([\w-]+) -->\n```ts\n([\s\S]*?)\n```/g)) {
    examples.set(match[1]!, match[2]!);
  }
  return { examples, tsBlocks: [...readme.matchAll(/^```(ts|typescript)$/gm)].length };
};

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const run = (file: string, cwd: string, env: Record<string, string>): Run => {
  const child = spawn(process.execPath, [TSX, file], { cwd, env: { ...process.env, ...env } });
  let output = "";
  child.stdout!.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr!.on("data", (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
};

/** Waits for `check`, naming `what` and the example's output on failure. */
const waitFor = (what: string, check: () => boolean, output: () => string, ms = 30_000) =>
  waitUntil(() => `${what}; output:\n${output()}`, check, ms, 50);

describe("the README's code examples", { timeout: 120_000 }, () => {
  let system: System | undefined;
  let running: RunningBrewcast;
  let api: string;
  let scratch: string;
  let examples: Map<string, string>;
  const partner = `readme-${randomBytes(3).toString("hex")}`;
  const credentials: Record<string, { id: string; secret: string }> = {};

  const request = async (
    method: string,
    path: string,
    token: string,
    body?: unknown,
    headers = {},
    // biome-ignore lint/suspicious/noExplicitAny: untyped JSON answers
  ): Promise<any> => {
    const response = await fetch(`${api}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
    return json;
  };
  const order = (shop: string) =>
    request("POST", "/v1/orders", credentials.backend!.secret, {
      shop_id: shop,
      items: [{ sku: "latte", quantity: 1 }],
    });

  beforeAll(async () => {
    ({ examples } = await readmeExamples());
    scratch = await mkdtemp(join(tmpdir(), "brewcast-readme-"));
    system = await startSystem({ adminToken: ADMIN_TOKEN });
    running = system.running;
    api = `http://127.0.0.1:${running.ports.http}`;
    await request("POST", "/admin/v1/partners", ADMIN_TOKEN, { id: partner, name: "Readme" });
    for (const shop of ["downtown", "uptown"]) {
      await request("POST", `/admin/v1/partners/${partner}/shops`, ADMIN_TOKEN, { id: shop, name: shop });
    }
    credentials.backend = await request("POST", `/admin/v1/partners/${partner}/credentials`, ADMIN_TOKEN, {
      kind: "backend",
    });
    credentials.device = await request("POST", `/admin/v1/partners/${partner}/credentials`, ADMIN_TOKEN, {
      kind: "device",
      shop_id: "downtown",
    });
  }, 120_000); // PGlite start and migrations on a loaded two-core machine

  afterAll(async () => {
    await system?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("marks every TypeScript block as an example this test runs", async () => {
    const { examples: found, tsBlocks } = await readmeExamples();
    expect([...found.keys()].sort()).toEqual(["poll", "sdk", "webhook-receiver"]);
    expect(found.size).toBe(tsBlocks);
  });

  it("sdk: a device follows its shop, once and in order, and resumes from its saved position", async () => {
    const first = [await order("downtown"), await order("uptown"), await order("downtown")];
    const file = join(scratch, "sdk.mts");
    await writeFile(file, examples.get("sdk")!.replace('"./src/client/index.ts"', JSON.stringify(SDK)));
    const env = {
      API_URL: api,
      MQTT_URL: `mqtt://127.0.0.1:${running.ports.mqtt}`,
      CREDENTIAL_ID: credentials.device!.id,
      SECRET: credentials.device!.secret,
      SHOP: "downtown",
    };
    const lines = (output: string) => output.split("\n").filter((line) => /^\d+ order\./.test(line));

    const a = run(file, scratch, env);
    await waitFor(
      "two downtown events and live",
      () => a.output().includes("live at seq") && lines(a.output()).length >= 2,
      a.output,
    );
    const pushed = await order("downtown");
    await waitFor("the pushed event", () => lines(a.output()).length >= 3, a.output);
    a.child.kill("SIGTERM");
    expect(await a.exited, a.output()).toBe(0);
    expect(lines(a.output())).toEqual([
      `1 order.created ${first[0].id} created`,
      `3 order.created ${first[2].id} created`,
      `4 order.created ${pushed.id} created`,
    ]);
    const saved = JSON.parse(await readFile(join(scratch, "brewcast-position.json"), "utf8"));
    expect(saved.seq).toBe(4);

    // A restart hands out only what happened since: the position was saved.
    await request("PATCH", `/v1/orders/${pushed.id}`, credentials.backend!.secret, { status: "accepted" });
    const b = run(file, scratch, env);
    await waitFor(
      "the change",
      () => lines(b.output()).length >= 1 && b.output().includes("live at seq"),
      b.output,
    );
    b.child.kill("SIGTERM");
    expect(await b.exited, b.output()).toBe(0);
    expect(lines(b.output())).toEqual([`5 order.status_changed ${pushed.id} accepted`]);
  });

  /** The sdk example in a directory of its own (its position file starts empty). */
  const sdkIn = async (name: string): Promise<{ file: string; dir: string }> => {
    const dir = join(scratch, name);
    await mkdir(dir);
    const file = join(dir, "consumer.mts");
    await writeFile(file, examples.get("sdk")!.replace('"./src/client/index.ts"', JSON.stringify(SDK)));
    return { file, dir };
  };

  it("sdk: without SHOP, a back end follows every shop of its partner", async () => {
    const { file, dir } = await sdkIn("backend");
    const all = await request("GET", "/v1/events?after=0", credentials.backend!.secret);
    const shops = new Set(all.events.map((e: { shop_id: string }) => e.shop_id));
    expect(shops.size).toBe(2);
    const env = {
      API_URL: api,
      MQTT_URL: `mqtt://127.0.0.1:${running.ports.mqtt}`,
      CREDENTIAL_ID: credentials.backend!.id,
      SECRET: credentials.backend!.secret,
      SHOP: "", // as a shell's `SHOP=` leaves it
    };
    const c = run(file, dir, env);
    const handled = () =>
      c
        .output()
        .split("\n")
        .filter((line) => /^\d+ order\./.test(line));
    await waitFor(
      "every event and live",
      () => c.output().includes("live at seq") && handled().length >= all.events.length,
      c.output,
    );
    c.child.kill("SIGTERM");
    expect(await c.exited, c.output()).toBe(0);
    expect(handled().map((line) => Number(line.split(" ")[0]))).toEqual(
      all.events.map((e: { seq: number }) => e.seq),
    );
  });

  it("sdk: an answer that cannot heal (a device asking for another shop: 404) ends it with that error, once", async () => {
    const { file, dir } = await sdkIn("wrong-shop");
    const c = run(file, dir, {
      API_URL: api,
      MQTT_URL: `mqtt://127.0.0.1:${running.ports.mqtt}`,
      CREDENTIAL_ID: credentials.device!.id,
      SECRET: credentials.device!.secret,
      SHOP: "uptown",
    });
    await waitFor("the example to exit", () => c.child.exitCode !== null, c.output, 20_000);
    expect(await c.exited).not.toBe(0);
    expect(c.output().match(/GET \/v1\/events: 404 NOT_FOUND: no shop uptown/g), c.output()).toHaveLength(1);
  });

  it("sdk: an unreachable API is said, with the retry delay, not waited on silently", async () => {
    const { file, dir } = await sdkIn("unreachable");
    const closed = await freePort();
    const c = run(file, dir, {
      API_URL: `http://127.0.0.1:${closed}`,
      MQTT_URL: `mqtt://127.0.0.1:${running.ports.mqtt}`,
      CREDENTIAL_ID: credentials.backend!.id,
      SECRET: credentials.backend!.secret,
    });
    const said = new RegExp(
      `^rest: GET http://127\\.0\\.0\\.1:${closed}/v1/events: connect ECONNREFUSED .* \\(retrying in \\d+ ms\\)$`,
      "m",
    );
    await waitFor("a retry to be said", () => said.test(c.output()), c.output);
    c.child.kill("SIGTERM");
    expect(await c.exited, c.output()).toBe(0);
  });

  it("poll: a back end reads every event after its position and stops at the head", async () => {
    const file = join(scratch, "poll.mts");
    await writeFile(file, examples.get("poll")!);
    const events = await request("GET", "/v1/events?after=0", credentials.backend!.secret);
    const p = run(file, scratch, { API_URL: api, SECRET: credentials.backend!.secret, AFTER: "1" });
    expect(await p.exited, p.output()).toBe(0);
    expect(p.output().trim().split("\n")).toEqual(
      events.events
        .slice(1)
        .map((e: { seq: number; type: string; order_id: string }) => `${e.seq} ${e.type} ${e.order_id}`),
    );
  });

  it("webhook-receiver: verifies signatures, echoes the challenge, dedupes by webhook-id", async () => {
    const file = join(scratch, "receiver.mts");
    const library = pathToFileURL(join(ROOT, "node_modules", "standardwebhooks", "dist", "index.js")).href;
    await writeFile(
      file,
      examples.get("webhook-receiver")!.replace('"standardwebhooks"', JSON.stringify(library)),
    );
    const port = await freePort();
    const secret = newWebhookSecret();
    const r = run(file, scratch, { WEBHOOK_SECRET: secret, PORT: String(port) });
    const sender = createWebhookSender({
      guard: createAddressGuard({ allowNets: parseAllowNets("127.0.0.0/8") }),
      timeoutMs: 5_000,
    });
    try {
      await waitFor("the receiver to listen", () => r.output().includes("listening"), r.output);
      const url = `http://127.0.0.1:${port}/hook`;
      expect((await sendVerification(sender, { url, secrets: [secret] })).ok).toBe(true);
      const body = JSON.stringify({ seq: 7, type: "order.created" });
      const message = { id: buildWebhookMessageId(partner, 7), timestamp: new Date(), body };
      // Rotation overlap: the old secret's signature and one the receiver knows.
      const both = [newWebhookSecret(), secret];
      expect((await sender.sendWebhook({ url, secrets: both }, message)).status).toBe(204);
      expect((await sender.sendWebhook({ url, secrets: [secret] }, message)).status).toBe(204);
      const forged = await sender.sendWebhook({ url, secrets: [newWebhookSecret()] }, message);
      expect(forged.status).toBe(401);
      await waitFor("the event line", () => r.output().includes(" order.created 7"), r.output);
      expect(r.output().match(/order\.created 7/g)).toHaveLength(1);
    } finally {
      await sender.close();
      r.child.kill("SIGTERM");
      await r.exited;
    }
  });
});
