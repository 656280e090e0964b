/**
 * One broker node for the Redis scale-out tests, run as its own process:
 *   node --import tsx test/broker/broker-node.ts
 * Env: NODE_DATABASE_URL (Postgres of the test), REDIS_URL, NODE_REDIS_PREFIX.
 * Prints one JSON line {"mqtt": port} once listening; exits on SIGTERM.
 */
import { startBroker } from "../../src/broker/index.ts";
import { createAccessFeed } from "../../src/store/access-feed.ts";
import { createCredentialStore } from "../../src/store/credentials.ts";
import { createPgDb } from "../../src/store/pg-db.ts";
import { silentLog } from "../support/test-db.ts";

const db = await createPgDb({ connectionString: process.env.NODE_DATABASE_URL!, log: silentLog, max: 4 });
const accessChanges = await createAccessFeed(db);
const broker = await startBroker({
  host: "127.0.0.1",
  mqttPort: 0,
  maxPacketBytes: 65_536,
  maxConnectionsPerPartner: 1000,
  drainTimeoutMs: 10_000,
  offlineQueueMax: 10_000,
  sessionTtlSeconds: 3600,
  redisUrl: process.env.REDIS_URL!,
  redisPrefix: process.env.NODE_REDIS_PREFIX!,
  log: silentLog,
  verifier: createCredentialStore(db, { accessChanges }),
  accessChanges,
});
process.stdout.write(`${JSON.stringify({ mqtt: broker.ports.mqtt })}\n`);
process.once("SIGTERM", async () => {
  await broker.close();
  await accessChanges.close();
  await db.close();
  process.exit(0);
});
