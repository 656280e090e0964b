/**
 * A persistent session unused for BREWCAST_SESSION_TTL is removed from the
 * database (counted), so its client starts afresh (sessionPresent=0); one
 * that is connected is kept however long it stays.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Harness, startHarness } from "../broker/helpers.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import { closed, login, subscribeGranted } from "../support/mqtt.ts";
import { until } from "../support/wait.ts";

let h: Harness;
let p: SeededPartner;
beforeAll(async () => {
  h = await startHarness();
  p = await h.seed(1);
});
afterAll(async () => h?.close());

const sessionPresent = async (url: string, clientId: string): Promise<boolean> => {
  let present: boolean | undefined;
  const client = await login(url, p.backend, { clientId, clean: false }, (c) =>
    c.once("connect", (connack) => {
      present = connack.sessionPresent;
    }),
  );
  client.end(true);
  await closed(client);
  return present!;
};

it("removes a session unused for the TTL, and keeps a connected one", async () => {
  const short = await h.extraBroker({ sessionTtlSeconds: 1, sessionSweepMs: 100 });
  const filter = `partners/${p.id}/shops/shop-1/orders/+`;
  const away = await login(short.url, p.backend, { clientId: "away", clean: false });
  expect(await subscribeGranted(away, filter, 1)).toBe(1);
  away.end(true);
  await closed(away);
  const staying = await login(short.url, p.backend, { clientId: "staying", clean: false });
  expect(await subscribeGranted(staying, filter, 1)).toBe(1);

  await until(() => short.broker.stats().sessions.expired >= 1, 10_000, "the session's expiry");
  const rows = await h.testDb.db.query<{ client_id: string }>(
    "SELECT client_id FROM mqtt_sessions ORDER BY 1",
  );
  expect(rows.map((r) => r.client_id)).toEqual([`${p.backend.id}/staying`]);
  expect(await sessionPresent(short.url, "away")).toBe(false);
  staying.end(true);
});
