/**
 * The Db port over embedded PGlite (Postgres compiled to WASM), so that a
 * fresh machine runs the whole system with no database server. One process
 * owns a data directory: a kernel lock on a file in it refuses a second one
 * (data-dir-lock.ts).
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { lockDataDir } from "./data-dir-lock.ts";
import { assertChannelName, beginStatement, type Db, type Queryable, type Row, type Sql } from "./db.ts";

const INT8_OID = 20;

export const MEMORY_DATA_DIR = "memory://";

export const createPgliteDb = async (dataDir: string): Promise<Db> => {
  let unlock = () => {};
  let location = MEMORY_DATA_DIR;
  if (dataDir !== MEMORY_DATA_DIR) {
    const dir = resolve(dataDir);
    mkdirSync(join(dir, "pglite"), { recursive: true });
    unlock = lockDataDir(dir);
    location = join(dir, "pglite");
  }
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(location, { parsers: { [INT8_OID]: (value: string) => Number(value) } });
  } catch (error) {
    unlock();
    throw error;
  }

  const run = async <R extends Row>(target: Queryable | PGlite, sql: Sql, params?: readonly unknown[]) => {
    const text = typeof sql === "string" ? sql : sql.text;
    const result = await (target as PGlite).query<R>(text, params as unknown[] | undefined);
    return result.rows;
  };

  return {
    kind: "pglite",
    query: (sql, params) => run(pglite, sql, params),
    async exec(sql) {
      await pglite.exec(sql);
    },
    async transaction(work, options) {
      // PGlite has a single connection; its transaction() holds it exclusively, so transactions are serial.
      return pglite.transaction(async (tx) => {
        if (options?.isolation || options?.readOnly) {
          await tx.query(beginStatement(options).replace(/^BEGIN/, "SET TRANSACTION"));
        }
        return work({
          query: (sql, params) => run(tx as unknown as PGlite, sql, params),
          async exec(sql) {
            await tx.exec(sql);
          },
        });
      });
    },
    async listen(channel, onPayload) {
      const unlisten = await pglite.listen(assertChannelName(channel), (payload) => onPayload(payload, true));
      return async () => unlisten();
    },
    async notify(channel, payload) {
      await pglite.query("SELECT pg_notify($1, $2)", [assertChannelName(channel), payload]);
    },
    async session() {
      return {
        query: (sql, params) => run(pglite, sql, params),
        async exec(sql) {
          await pglite.exec(sql);
        },
        onLost() {},
        async release() {},
      };
    },
    async close() {
      try {
        await pglite.close();
      } finally {
        unlock();
      }
    },
  };
};
