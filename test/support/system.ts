/**
 * The whole system in this process (API, embedded broker, bridge) on free
 * ports over a fresh database: a new Postgres database when DATABASE_URL is
 * set, in-memory PGlite otherwise. Closing it drops that database.
 */
import { loadConfig } from "../../src/config/load-config.ts";
import { type BrewcastInternals, internalsOf, type RunningBrewcast, startBrewcast } from "../../src/main.ts";
import { type SeededPartner, seedPartner } from "./fixtures.ts";
import { createTestDb, silentLog, type TestDb } from "./test-db.ts";

export const SYSTEM_ADMIN_TOKEN = "system-tests-admin-token-0123456789";

export interface System {
  /** The process, and its internals (`internalsOf`): its database, broker and bridge. */
  running: RunningBrewcast & BrewcastInternals;
  apiUrl: string;
  mqttUrl: string;
  mqttPort: number;
  /** Where the database lives, for a second process (tail). */
  env: Record<string, string>;
  seed(shops?: number): Promise<SeededPartner>;
  close(): Promise<void>;
}

export const startSystem = async (
  options: {
    watermarkMs?: number;
    ports?: { http: number; mqtt: number };
    adminToken?: string;
    /** More configuration (BREWCAST_*), over the defaults above. */
    env?: Record<string, string>;
  } = {},
): Promise<System> => {
  let testDb: TestDb | undefined;
  const env: Record<string, string> = {
    BREWCAST_HTTP_PORT: String(options.ports?.http ?? 0),
    BREWCAST_MQTT_PORT: String(options.ports?.mqtt ?? 0),
    BREWCAST_ADMIN_TOKEN: options.adminToken ?? SYSTEM_ADMIN_TOKEN,
    BREWCAST_WATERMARK_MS: String(options.watermarkMs ?? 200),
    LOG_LEVEL: "silent",
    ...options.env,
  };
  if (process.env.DATABASE_URL) {
    testDb = await createTestDb("pg");
    env.DATABASE_URL = testDb.url!;
  } else {
    env.BREWCAST_DATA_DIR = "memory://";
  }
  const { config } = loadConfig(env);
  const started = await startBrewcast(config, silentLog, "all");
  const running = { ...started, ...internalsOf(started) };
  return {
    running,
    apiUrl: `http://127.0.0.1:${running.ports.http}`,
    mqttUrl: `mqtt://127.0.0.1:${running.ports.mqtt}`,
    mqttPort: running.ports.mqtt!,
    env,
    seed: (shops = 2) => seedPartner(running.db, { shops }),
    async close() {
      await running.stop();
      await testDb?.cleanup();
    },
  };
};
