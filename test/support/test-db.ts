/**
 * A fresh, migrated database per caller: a new Postgres database on the
 * server of DATABASE_URL when it is set, an in-memory PGlite otherwise.
 * Postgres test databases are dropped only when cleanup is called, so a
 * failed test that skips cleanup leaves its evidence behind.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import pino from "pino";
import type { Db } from "../../src/store/db.ts";
import { migrate } from "../../src/store/migrate.ts";
import { createPgDb } from "../../src/store/pg-db.ts";
import { createPgliteDb } from "../../src/store/pglite-db.ts";

export type AdapterKind = "pg" | "pglite";

export const DATABASE_URL = process.env.DATABASE_URL || undefined;
export const REDIS_URL = process.env.REDIS_URL || undefined;

/** The adapters this run can test: always PGlite, and pg when DATABASE_URL is set. */
export const AVAILABLE_ADAPTERS: AdapterKind[] = DATABASE_URL ? ["pg", "pglite"] : ["pglite"];
/** The adapter integration tests use by default: the real server when there is one. */
export const DEFAULT_ADAPTER: AdapterKind = DATABASE_URL ? "pg" : "pglite";

export const silentLog = pino({ level: "silent" });

export interface TestDb {
  db: Db;
  kind: AdapterKind;
  /** Connection string of the test database (pg only), for child processes. */
  url: string | undefined;
  cleanup(): Promise<void>;
}

const withDatabase = (url: string, database: string): string => {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
};

export const createTestDb = async (
  kind: AdapterKind = DEFAULT_ADAPTER,
  /** `migrated: false`: an empty database, for tests of migrating itself. */
  options: { poolSize?: number; migrated?: boolean } = {},
): Promise<TestDb> => {
  const migrated = options.migrated ?? true;
  if (kind === "pglite") {
    const db = await createPgliteDb("memory://");
    if (migrated) await migrate(db);
    return { db, kind, url: undefined, cleanup: () => db.close() };
  }
  if (!DATABASE_URL) throw new Error("DATABASE_URL is not set");
  const name = `brewcast_test_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(DATABASE_URL, name);
  const db = await createPgDb({ connectionString: url, log: silentLog, max: options.poolSize ?? 20 });
  if (migrated) await migrate(db);
  return {
    db,
    kind,
    url,
    async cleanup() {
      await db.close();
      const dropper = new pg.Client({ connectionString: DATABASE_URL });
      await dropper.connect();
      try {
        await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await dropper.end();
      }
    },
  };
};
