/** Throwaway Postgres databases for a bench run. */
import { randomBytes } from "node:crypto";
import pg from "pg";

export const DEFAULT_ADMIN_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test";

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/**
 * Creates `brewcast_bench_<random>` on the server of `adminUrl`
 * (BENCH_DATABASE_URL, or the local test server) and returns its URL.
 */
export const createBenchDatabase = async (
  adminUrl = process.env.BENCH_DATABASE_URL ?? DEFAULT_ADMIN_DATABASE_URL,
): Promise<BenchDatabase> => {
  const name = `brewcast_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    name,
    url: url.toString(),
    async drop() {
      if (dropped) return;
      dropped = true;
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
};

export const postgresVersion = async (url: string): Promise<string> => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return `postgres ${rows[0]?.v ?? "?"}`;
  } finally {
    await client.end();
  }
};
