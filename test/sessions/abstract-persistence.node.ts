/**
 * aedes-persistence's own conformance suite (node_modules/aedes-persistence/
 * abstract.js, written for node:test) against brewcast's session
 * persistence, on a real database (Postgres with DATABASE_URL, else PGlite)
 * and the in-memory delegate Aedes would use otherwise. Run by
 * abstract-persistence.test.ts as `node --import tsx --test`; the tests
 * brewcast departs from on purpose run as TODO, with the reason.
 */
import { createRequire } from "node:module";
import { after, before, test } from "node:test";
import aedesPersistence from "aedes-persistence";
import {
  createSessionPersistence,
  type DelegatePersistence,
} from "../../src/sessions/session-persistence.ts";
import { createSessionLog, createSessionStore } from "../../src/store/mqtt-sessions.ts";
import { createTestDb, type TestDb } from "../support/test-db.ts";
import { DEPARTURES } from "./abstract-departures.ts";

const require = createRequire(import.meta.url);
const abstractPersistence = require("aedes-persistence/abstract.js") as (options: {
  test: (name: string, body: (t: unknown) => Promise<void>) => void;
  persistence: () => Promise<unknown>;
  testAsync: boolean;
}) => void;

let testDb: TestDb;
before(async () => {
  testDb = await createTestDb();
});
after(async () => testDb?.cleanup());

abstractPersistence({
  testAsync: true,
  test: (name, body) => {
    const departure = DEPARTURES[name];
    if (departure) test(name, { todo: departure }, body);
    else test(name, body);
  },
  async persistence() {
    // Every test starts from an empty store, as a fresh in-memory instance would.
    await testDb.db.query("DELETE FROM mqtt_sessions");
    const memory = aedesPersistence as unknown as () => DelegatePersistence;
    return createSessionPersistence({
      store: createSessionStore(testDb.db),
      log: createSessionLog(testDb.db),
      delegate: memory(),
      ownerOf: () => undefined,
      flushMs: 60_000,
      ttlSeconds: 3_600,
      sweepMs: 60_000,
      drainTimeoutMs: 10_000,
      onError: (error) => {
        throw error;
      },
    });
  },
});
