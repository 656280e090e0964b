/**
 * Numbered SQL migrations (`migrations/NNNN_name.sql`), applied in one
 * transaction under an advisory lock, so two processes starting at once
 * apply each migration exactly once.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { Db } from "./db.ts";

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);
/** Arbitrary constant: the advisory lock key of the migration runner. */
const MIGRATION_LOCK_KEY = 0x62726577; // "brew"

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const loadMigrations = (): Migration[] =>
  readdirSync(MIGRATIONS_DIR)
    .filter((file) => /^\d{4}_[a-z0-9_]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file.replace(/\.sql$/, ""),
      sql: readFileSync(new URL(file, MIGRATIONS_DIR), "utf8"),
    }));

/** Applies pending migrations; returns the names applied by this call. */
export const migrate = async (db: Db): Promise<string[]> =>
  db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const applied = new Set(
      (await tx.query<{ version: number }>("SELECT version FROM schema_migrations")).map(
        (row) => row.version,
      ),
    );
    const done: string[] = [];
    for (const migration of loadMigrations()) {
      if (applied.has(migration.version)) continue;
      await tx.exec(migration.sql);
      await tx.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
        migration.version,
        migration.name,
      ]);
      done.push(migration.name);
    }
    return done;
  });
