/**
 * One broker node for the Redis scale-out tests, run as its own process:
 *   node --import tsx test/broker/broker-node.ts
 * Env: NODE_DATABASE_URL (Postgres of the test), REDIS_URL, NODE_REDIS_PREFIX.
 * Prints one JSON line {"mqtt": port} once listening; exits on SIGTERM.
 */
import { startBroker } from "../../src/broker/index.ts";
import { createAccessFeed } from "../../src/store/access-feed.ts";
import { createCredentialStore } from "../../src/store/credentials.ts";
import { createSessionLog, createSessionStore } from "../../src/store/mqtt-sessions.ts";
import { createPgDb } from "../../src/store/pg-db.ts";
import { silentLog } from "../support/test-db.ts";
import { TEST_BROKER_LIMITS } from "./helpers.ts";

const db = await createPgDb({ connectionString: process.env.NODE_DATABASE_URL!, log: silentLog, max: 4 });
const accessChanges = await createAccessFeed(db);
const broker = await startBroker({
  ...TEST_BROKER_LIMITS,
  redisUrl: process.env.REDIS_URL!,
  redisPrefix: process.env.NODE_REDIS_PREFIX!,
  verifier: createCredentialStore(db, { accessChanges }),
  sessions: { store: createSessionStore(db), log: createSessionLog(db) },
  accessChanges,
});
process.stdout.write(`${JSON.stringify({ mqtt: broker.ports.mqtt })}\n`);
process.once("SIGTERM", async () => {
  await broker.close();
  await accessChanges.close();
  await db.close();
  process.exit(0);
});
