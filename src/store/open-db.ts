/**
 * Chooses the adapter: Postgres when DATABASE_URL is set, embedded PGlite otherwise.
 */
import type { Logger } from "pino";
import type { Db } from "./db.ts";
import { createPgDb } from "./pg-db.ts";
import { createPgliteDb } from "./pglite-db.ts";

export interface OpenDbOptions {
  databaseUrl: string | undefined;
  dataDir: string;
  log: Logger;
  poolSize?: number;
}

export const openDb = async ({ databaseUrl, dataDir, log, poolSize }: OpenDbOptions): Promise<Db> => {
  if (databaseUrl) {
    const db = await createPgDb({ connectionString: databaseUrl, log, max: poolSize ?? 10 });
    log.info({ adapter: "pg" }, "database connected");
    return db;
  }
  const db = await createPgliteDb(dataDir);
  log.info({ adapter: "pglite", dataDir }, "embedded database opened");
  return db;
};
