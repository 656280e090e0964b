/**
 * The log behind a running consumer is replaced: brewcast is stopped and a
 * second one starts on the same ports with a fresh database (a new epoch)
 * holding the same partner and credential. The consumer must stop with a
 * resync signal instead of mixing the two logs. While the second one is
 * being set up, a TCP proxy (MQTT) and a gate in front of fetch (REST) keep
 * the consumer out, as a load balancer would: an unknown credential would
 * rightly stop it with 401 / CONNACK 4 instead.
 */
import { afterAll, expect, it } from "vitest";
import { createConsumer, type OrderEvent, ResyncRequiredError } from "../../src/client/index.ts";
import { startChaosProxy } from "./chaos-proxy.ts";
import { appendEvents, nextEvent, type System, startSystem } from "./helpers.ts";

const systems: System[] = [];

afterAll(async () => {
  for (const system of systems) await system.close().catch(() => undefined);
});

it("stops with a resync signal when brewcast comes back with another log on the same address", async () => {
  const first = await startSystem({ watermarkMs: 200 });
  systems.push(first);
  const partner = await first.seed(2);
  await appendEvents(first, partner.id, partner.shops, 30);
  const tenants = {
    partners: await first.running.db.query("SELECT id, name FROM partners WHERE id = $1", [partner.id]),
    shops: await first.running.db.query("SELECT partner_id, id, name FROM shops WHERE partner_id = $1", [
      partner.id,
    ]),
    credentials: await first.running.db.query(
      "SELECT id, partner_id, kind, shop_id, secret_hash FROM credentials WHERE partner_id = $1",
      [partner.id],
    ),
  };

  const proxy = await startChaosProxy({ host: "127.0.0.1", port: first.mqttPort });
  let gate: Promise<void> = Promise.resolve();
  let openGate = () => {};
  const gatedFetch: typeof fetch = async (input, init) => {
    await gate;
    return fetch(input, init);
  };
  const consumer = createConsumer({
    apiUrl: first.apiUrl,
    mqttUrl: proxy.url,
    fetch: gatedFetch,
    credentialId: partner.backend.id,
    secret: partner.backend.secret,
    partner: partner.id,
    watermarkMs: 200,
    reconnectMs: 100,
    degradedPollMs: 200,
    retry: { initialMs: 10, maxMs: 200 },
  });
  const handled: OrderEvent[] = [];
  const done = consumer.run((event) => {
    handled.push(event);
  });
  done.catch(() => undefined);
  if (process.env.EPOCH_DEBUG)
    consumer.on("error", (e) => process.stdout.write(`consumer error ${e.during} ${e.error.message}\n`));
  await nextEvent(consumer, "live");
  expect(handled.length).toBe(30);
  const firstEpoch = consumer.status().epoch;

  const resync = nextEvent<{ reason: string; storedEpoch: string; epoch: string | null }>(
    consumer,
    "resync",
    () => true,
    120_000,
  );
  gate = new Promise<void>((resolve) => {
    openGate = resolve;
  });
  proxy.setRefusing(true);
  await first.close();
  systems.length = 0;
  const second = await startSystem({
    watermarkMs: 200,
    ports: { http: first.running.ports.http, mqtt: first.mqttPort },
  });
  systems.push(second);
  // The same tenant and credential, restored into a new log.
  await second.running.db.query("INSERT INTO partners (id, name) VALUES ($1, $2)", [
    tenants.partners[0]!.id,
    tenants.partners[0]!.name,
  ]);
  for (const shop of tenants.shops) {
    await second.running.db.query("INSERT INTO shops (partner_id, id, name) VALUES ($1, $2, $3)", [
      shop.partner_id,
      shop.id,
      shop.name,
    ]);
  }
  for (const c of tenants.credentials) {
    await second.running.db.query(
      "INSERT INTO credentials (id, partner_id, kind, shop_id, secret_hash) VALUES ($1, $2, $3, $4, $5)",
      [c.id, c.partner_id, c.kind, c.shop_id, c.secret_hash],
    );
  }
  await appendEvents(second, partner.id, partner.shops, 40);
  proxy.setRefusing(false);
  openGate();

  const signal = await resync;
  expect(signal.reason).toBe("epoch-changed");
  expect(signal.storedEpoch).toBe(firstEpoch);
  expect(signal.epoch).not.toBe(firstEpoch);
  await expect(done).rejects.toBeInstanceOf(ResyncRequiredError);
  // Nothing of the second log was handed out.
  expect(handled.map((e) => e.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  expect(new Set(handled.map((e) => e.epoch))).toEqual(new Set([firstEpoch]));
  await proxy.close();
}, 240_000);
