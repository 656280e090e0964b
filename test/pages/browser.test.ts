/**
 * The console and the kiosk in a real browser: Debian's chromium (headless,
 * driven by playwright-core) against the whole system. The kiosk shows orders
 * created through the API, in order, and moves them on status changes; the
 * console's lag follows a subscriber that stops reading; suspending from the
 * console turns the kiosk's link lost (its reconnects refused) and resuming
 * brings it back; silence (a stopped bridge: no watermark) turns it late, then
 * lost; the console's actions work; axe-core finds nothing serious.
 *
 * BREWCAST_SCREENSHOTS=1 also writes docs/console.png and docs/kiosk.png.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useCleanups } from "../support/cleanups.ts";
import type { SeededCredential, SeededPartner } from "../support/fixtures.ts";
import { CHROMIUM } from "../support/global-setup.ts";
import { fetchJson } from "../support/http.ts";
import { SYSTEM_ADMIN_TOKEN, type System, startSystem } from "../support/system.ts";
import { waitFor } from "../support/wait.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const STUCK_SUBSCRIBER = path.join(import.meta.dirname, "stuck-subscriber.py");
const onCleanup = useCleanups();
const SCREENSHOTS = process.env.BREWCAST_SCREENSHOTS === "1";

describe.runIf(existsSync(CHROMIUM))("console and kiosk in chromium", () => {
  let system: System;
  let browser: Browser;
  beforeAll(async () => {
    // A short watermark so that "late" and "lost" come within a test's patience. The lag test
    // creates hundreds of big orders from one back end as fast as it can: the per-credential
    // rate limit (tested in test/api/event-caching.test.ts) is lifted so it measures lag.
    system = await startSystem({
      watermarkMs: 500,
      env: {
        BREWCAST_DRAIN_TIMEOUT_MS: "6000",
        BREWCAST_WEBHOOK_ALLOW_NETS: "127.0.0.0/8",
        BREWCAST_RATE_LIMIT_REQUESTS: "1000000",
      },
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  });
  afterAll(async () => {
    await browser?.close();
    await system?.close();
  });

  const createOrder = async (partner: SeededPartner, shop: string, sku = "latte", lines = 1) => {
    const created = await fetchJson<{ id: string }>(`${system.apiUrl}/v1/orders`, {
      method: "POST",
      headers: { authorization: `Bearer ${partner.backend.secret}` },
      body: {
        shop_id: shop,
        items: Array.from({ length: lines }, (_, i) => ({
          sku: `${sku}${lines > 1 ? `-${i}` : ""}`,
          quantity: 1,
        })),
      },
    });
    expect(created.status).toBe(201);
    return created.body.id;
  };
  const setStatus = async (partner: SeededPartner, orderId: string, status: string) => {
    const changed = await fetchJson(`${system.apiUrl}/v1/orders/${orderId}`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${partner.backend.secret}` },
      body: { status },
    });
    expect(changed.status).toBe(200);
  };

  const openConsole = async (partnerId: string): Promise<Page> => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("dialog", (dialog) => void dialog.accept());
    await page.goto(`${system.apiUrl}/console`);
    await page.getByLabel("Admin token").fill(SYSTEM_ADMIN_TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator(`#partners tr[data-partner="${partnerId}"]`).waitFor();
    // Kept for the tab only: sessionStorage, never the URL.
    expect(page.url()).toBe(`${system.apiUrl}/console`);
    return page;
  };
  const manage = async (page: Page, partnerId: string) => {
    await page.getByRole("button", { name: `Manage ${partnerId}` }).click();
    await page.locator("#partner-title:focus", { hasText: partnerId }).waitFor();
  };
  const partnerCell = (page: Page, partnerId: string, column: string) =>
    page.locator(`#partners tr[data-partner="${partnerId}"] td.${column}`).textContent();

  const openKiosk = async (partner: SeededPartner, shop: string, device: SeededCredential): Promise<Page> => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    await page.goto(`${system.apiUrl}/kiosk?partner=${partner.id}&shop=${shop}`);
    await page.getByLabel("Device credential id").fill(device.id);
    await page.getByLabel("Secret").fill(device.secret);
    await page.getByRole("button", { name: "Connect" }).click();
    await page.locator('#link[data-link="live"]').waitFor();
    return page;
  };
  const column = (page: Page, status: string) =>
    page
      .locator(`#${status} li`)
      .evaluateAll((items) =>
        items.map((item) => (item as unknown as { dataset: { orderId: string } }).dataset.orderId),
      );

  it("the kiosk shows orders created through the API in order, and moves them as their status changes", async () => {
    const partner = await system.seed(2);
    const [shop, otherShop] = partner.shops as [string, string];
    const before = await createOrder(partner, shop, "espresso");
    const kiosk = await openKiosk(partner, shop, partner.devices[0]!);
    expect(await column(kiosk, "created")).toEqual([before]);

    const created: string[] = [before];
    for (let i = 0; i < 5; i++) {
      created.push(await createOrder(partner, shop));
      await createOrder(partner, otherShop); // another shop's: never on this board
    }
    await waitFor("every order on the board", async () => (await column(kiosk, "created")).length === 6);
    expect(await column(kiosk, "created")).toEqual(created);

    await setStatus(partner, created[1]!, "accepted");
    await setStatus(partner, created[0]!, "accepted");
    await setStatus(partner, created[0]!, "preparing");
    await waitFor("the moves", async () => (await column(kiosk, "preparing")).length === 1);
    expect(await column(kiosk, "accepted")).toEqual([created[1]]);
    expect(await column(kiosk, "preparing")).toEqual([created[0]]);
    expect(await column(kiosk, "created")).toEqual(created.slice(2));
    await setStatus(partner, created[2]!, "cancelled");
    await waitFor(
      "a cancelled order off the board",
      async () => (await column(kiosk, "created")).length === 3,
    );
    if (SCREENSHOTS) await kiosk.screenshot({ path: path.join(ROOT, "docs/kiosk.png") });
    await kiosk.close();
  });

  it("the console's lag moves while a subscriber stops reading, and falls back once it is dropped", async () => {
    const partner = await system.seed(1);
    const shop = partner.shops[0]!;
    const page = await openConsole(partner.id);
    await page.locator(`#charts figure[data-partner="${partner.id}"]`).waitFor();
    expect(await partnerCell(page, partner.id, "lag-events")).toBe("0");

    // A subscriber that stops reading its socket: Aedes holds the partner's deliveries until
    // BREWCAST_DRAIN_TIMEOUT_MS, the bridge's publishes wait, and the lag grows.
    const stuck = spawn(
      "python3",
      [
        STUCK_SUBSCRIBER,
        "127.0.0.1",
        String(system.mqttPort),
        partner.backend.id,
        partner.backend.secret,
        `partners/${partner.id}/shops/+/orders/+`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    onCleanup(async () => stuck.kill());
    await new Promise((resolve) => stuck.stdout.once("data", resolve));
    let orders = 0;
    await waitFor(
      "the console to show a lag",
      async () => {
        // Big orders (50 lines), 8 at a time, fill the socket's buffers sooner.
        await Promise.all(Array.from({ length: 8 }, () => createOrder(partner, shop, "x".repeat(60), 50)));
        orders += 8;
        // Seconds, not events: a moment between commit and publish is not a stall.
        return Number(await partnerCell(page, partner.id, "lag-seconds")) >= 2;
      },
      60_000,
      0,
    );
    await waitFor(
      "the lag to come back to 0 once the stuck subscriber is dropped",
      async () => (await partnerCell(page, partner.id, "lag-events")) === "0",
      30_000,
      100,
    );
    stuck.kill();
    // The chart saw both: the peak is still in its last five minutes.
    const figure = page.locator(`#charts figure[data-partner="${partner.id}"]`);
    expect(Number(await figure.getAttribute("data-peak"))).toBeGreaterThan(0);
    expect(orders).toBeGreaterThan(0);
    if (SCREENSHOTS) {
      await manage(page, partner.id);
      await page.screenshot({ path: path.join(ROOT, "docs/console.png"), fullPage: true });
    }
    await page.close();
  }, 120_000);

  it("suspending from the console turns the kiosk's link lost and refuses its reconnects; resuming brings it back", async () => {
    const partner = await system.seed(1);
    const shop = partner.shops[0]!;
    // A shop's cursor (the watermark the link light runs on) exists once the shop has an event.
    const first = await createOrder(partner, shop);
    const kiosk = await openKiosk(partner, shop, partner.devices[0]!);
    expect(await column(kiosk, "created")).toEqual([first]);
    const page = await openConsole(partner.id);
    await manage(page, partner.id);

    await page.getByRole("button", { name: "Suspend" }).click();
    await kiosk.locator('#link[data-link="lost"]').waitFor();
    await kiosk.locator("#link-detail", { hasText: "refused" }).waitFor();
    // Still refused after reconnect attempts (every 2 s), not a blip.
    await kiosk.waitForTimeout(2_500);
    expect(await kiosk.locator("#link").getAttribute("data-link")).toBe("lost");
    await page.locator("#audit tbody tr", { hasText: "suspended" }).first().waitFor();

    await page.getByRole("button", { name: "Resume" }).click();
    await kiosk.locator('#link[data-link="live"]').waitFor({ timeout: 15_000 });
    // And it delivers again: an order made now shows up.
    const order = await createOrder(partner, shop);
    await waitFor("the order after resuming", async () => (await column(kiosk, "created")).includes(order));
    await kiosk.close();
    await page.close();
  }, 60_000);

  it("a silent link turns the kiosk late, then lost, while MQTT stays connected (the bridge stopped)", async () => {
    // A system of its own: its bridge is stopped, so nothing (not even the watermark) is published.
    const quiet = await startSystem({ watermarkMs: 1_000 });
    onCleanup(() => quiet.close());
    const partner = await quiet.seed(1);
    const shop = partner.shops[0]!;
    await fetchJson(`${quiet.apiUrl}/v1/orders`, {
      method: "POST",
      headers: { authorization: `Bearer ${partner.backend.secret}` },
      body: { shop_id: shop, items: [{ sku: "tea", quantity: 1 }] },
    });
    const kiosk = await browser.newPage();
    await kiosk.goto(`${quiet.apiUrl}/kiosk?partner=${partner.id}&shop=${shop}`);
    await kiosk.getByLabel("Device credential id").fill(partner.devices[0]!.id);
    await kiosk.getByLabel("Secret").fill(partner.devices[0]!.secret);
    await kiosk.getByRole("button", { name: "Connect" }).click();
    await kiosk.locator('#link[data-link="live"]').waitFor();

    await quiet.running.bridge!.stop();
    await kiosk.locator('#link[data-link="late"]').waitFor();
    await kiosk.locator('#link[data-link="lost"]').waitFor();
    // Connected all along: silence alone says the link is lost.
    expect(await kiosk.locator("#link-detail").textContent()).toMatch(/^last heard \d+ s ago$/);
    await kiosk.close();
  });

  it("the console shows webhook endpoints, pins and unpins a state, creates a credential (secret shown once) and revokes it", async () => {
    const partner = await system.seed(1);
    // A webhook endpoint nobody answers: it stays pending (unverified).
    const endpoint = await fetchJson<{ id: string }>(`${system.apiUrl}/v1/webhooks`, {
      method: "POST",
      headers: { authorization: `Bearer ${partner.backend.secret}` },
      body: { url: "http://127.0.0.1:9/orders" },
    });
    expect(endpoint.status).toBe(201);
    const page = await openConsole(partner.id);
    expect(await page.locator(`#partners tr[data-partner="${partner.id}"]`).textContent()).toContain(
      "1 pending",
    );
    await manage(page, partner.id);
    await page
      .locator("#webhooks tbody tr", { hasText: endpoint.body.id })
      .filter({ hasText: "pending" })
      .waitFor();

    await page.getByLabel("State").selectOption("throttled");
    await page.getByLabel("Reason").fill("maintenance window");
    await page.getByRole("button", { name: "Pin state" }).click();
    await page.locator("#audit tbody tr", { hasText: "maintenance window" }).waitFor();
    await page.locator("#partner-title", { hasText: "throttled (pinned)" }).waitFor();
    await page.getByRole("button", { name: "Unpin" }).click();
    await page.locator("#audit tbody tr", { hasText: "unpinned" }).waitFor();

    await page.getByLabel("Kind").selectOption("device");
    await page.getByRole("button", { name: "Create credential" }).click();
    await page.locator("#new-secret:not([hidden])").waitFor();
    const id = (await page.locator("#new-credential-id").textContent())!;
    const secret = (await page.locator("#new-credential-secret").textContent())!;
    expect(secret).toMatch(/^bcs_/);
    // The new secret works.
    const orders = await fetchJson(`${system.apiUrl}/v1/orders?shop_id=${partner.shops[0]}`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(orders.status).toBe(200);
    await page.getByRole("button", { name: "I have copied it" }).click();
    expect(await page.locator("#new-credential-secret").textContent()).toBe("");

    await page.getByRole("button", { name: `Revoke ${id}` }).click();
    await page.locator(`#credentials tr[data-credential="${id}"] button`).waitFor({ state: "detached" });
    const refused = await fetchJson(`${system.apiUrl}/v1/orders?shop_id=${partner.shops[0]}`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(refused.status).toBe(401);
    await page.close();
  }, 60_000);

  it("axe-core finds no serious or critical accessibility problem on either page", async () => {
    const partner = await system.seed(1);
    await createOrder(partner, partner.shops[0]!);
    const consolePage = await openConsole(partner.id);
    await manage(consolePage, partner.id);
    const kiosk = await openKiosk(partner, partner.shops[0]!, partner.devices[0]!);
    const signIn = await browser.newPage();
    await signIn.goto(`${system.apiUrl}/console`);
    // A wrong token is said, and the form stays.
    await signIn.getByLabel("Admin token").fill("not-the-admin-token");
    await signIn.keyboard.press("Enter");
    await signIn.getByRole("alert").filter({ hasText: "refused" }).waitFor();
    expect(await signIn.evaluate("sessionStorage.length")).toBe(0);
    // Keyboard only: Tab from the token field reaches the sign-in button.
    await signIn.getByLabel("Admin token").focus();
    await signIn.keyboard.press("Tab");
    expect(await signIn.evaluate("document.activeElement.textContent")).toBe("Sign in");
    for (const page of [consolePage, kiosk, signIn]) {
      // evaluate() runs outside the page's CSP, which forbids inline scripts.
      await page.evaluate(AXE);
      const violations = await page.evaluate(async () => {
        const axe = (
          globalThis as unknown as {
            axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> };
          }
        ).axe;
        const result = await axe.run();
        return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
      });
      expect(
        violations.filter((v) => v.impact === "serious" || v.impact === "critical"),
        page.url(),
      ).toEqual([]);
    }
    await Promise.all([consolePage.close(), kiosk.close(), signIn.close()]);
  }, 60_000);
});
