/**
 * The Db port over a Postgres server, through a `pg` pool.
 */
import pg from "pg";
import type { Logger } from "pino";
import { assertChannelName, beginStatement, type Db, type Queryable, type Row, type Sql } from "./db.ts";

const INT8_OID = 20;

/** pg's query config for a plain or a named (prepared once per connection) statement. */
const queryConfig = (sql: Sql, params?: readonly unknown[]): pg.QueryConfig =>
  typeof sql === "string"
    ? { text: sql, values: params as unknown[] | undefined }
    : { name: sql.name, text: sql.text, values: params as unknown[] | undefined };

/** Parses int8 as a JS number (all our bigints stay far below 2^53) without touching pg's global parsers. */
const typeParsers = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === INT8_OID) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

/**
 * How long a sending backend's role is trusted before it is checked again: a pid is reused once
 * its backend is gone (pools close idle connections after 10 s), so the answer is kept briefly.
 */
const SENDER_CHECK_TTL_MS = 10_000;
const SENDERS_KEPT = 1_000;

/**
 * Whether a notification's sending backend is logged in as our own role, answered at once from
 * what was looked up before: an unknown (or stale) pid answers false and is looked up for next time.
 */
const createSenderCheck = (lookUp: (pid: number) => Promise<boolean>) => {
  const known = new Map<number, { own: boolean; checkedAt: number }>();
  const checking = new Set<number>();
  return {
    fromOwnRole(pid: number): boolean {
      const entry = known.get(pid);
      if (entry && Date.now() - entry.checkedAt < SENDER_CHECK_TTL_MS) return entry.own;
      if (!checking.has(pid)) {
        checking.add(pid);
        lookUp(pid)
          .then((own) => {
            if (known.size >= SENDERS_KEPT) known.clear();
            known.set(pid, { own, checkedAt: Date.now() });
          })
          .catch(() => undefined)
          .finally(() => checking.delete(pid));
      }
      return false;
    },
  };
};

export interface PgDbOptions {
  connectionString: string;
  log: Logger;
  max?: number;
  applicationName?: string;
}

export const createPgDb = async (options: PgDbOptions): Promise<Db> => {
  const { log } = options;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    types: typeParsers,
    application_name: options.applicationName ?? "brewcast",
    connectionTimeoutMillis: 10_000,
  });
  // An idle client that loses its server emits here; without a handler the process would crash.
  pool.on("error", (error) => log.warn({ err: error }, "idle database connection lost"));
  // Fail fast at start when the server is not there.
  await pool.query("SELECT 1");

  const listeners = new Map<
    string,
    Set<{ onPayload: (p: string, fromOwnRole: boolean) => void; onReconnect?: () => void }>
  >();
  const senders = createSenderCheck((pid) =>
    pool
      .query<{ own: boolean }>("SELECT usename = session_user AS own FROM pg_stat_activity WHERE pid = $1", [
        pid,
      ])
      .then((result) => result.rows[0]?.own === true),
  );
  let listenClient: pg.Client | undefined;
  let listenConnecting: Promise<pg.Client> | undefined;
  let closed = false;

  const connectListener = async (): Promise<pg.Client> => {
    const client = new pg.Client({ connectionString: options.connectionString, types: typeParsers });
    await client.connect();
    client.on("notification", (message) => {
      const own = senders.fromOwnRole(message.processId);
      for (const entry of listeners.get(message.channel) ?? []) entry.onPayload(message.payload ?? "", own);
    });
    const lost = (error?: Error) => {
      if (listenClient !== client) return;
      listenClient = undefined;
      if (closed) return;
      log.warn({ err: error }, "database listen connection lost; reconnecting");
      void reconnectListener();
    };
    client.on("error", lost);
    client.on("end", () => lost());
    for (const channel of listeners.keys()) await client.query(`LISTEN ${channel}`);
    listenClient = client;
    return client;
  };

  const reconnectListener = async (): Promise<void> => {
    for (let attempt = 0; !closed; attempt++) {
      try {
        await connectListener();
        for (const entries of listeners.values()) for (const entry of entries) entry.onReconnect?.();
        log.info("database listen connection restored");
        return;
      } catch (error) {
        const delay = Math.min(200 * 2 ** attempt, 5_000);
        log.warn({ err: error, retryInMs: delay }, "database listen reconnect failed");
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  };

  const getListenClient = async (): Promise<pg.Client> => {
    if (listenClient) return listenClient;
    listenConnecting ??= connectListener().finally(() => {
      listenConnecting = undefined;
    });
    return listenConnecting;
  };

  const db: Db = {
    kind: "pg",
    async query<R extends Row = Row>(sql: Sql, params?: readonly unknown[]) {
      const result = await pool.query(queryConfig(sql, params));
      return result.rows as R[];
    },
    async exec(sql) {
      await pool.query(sql);
    },
    async transaction(work, txOptions) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query(beginStatement(txOptions));
        const tx: Queryable = {
          async query<R extends Row = Row>(sql: Sql, params?: readonly unknown[]) {
            const result = await client.query(queryConfig(sql, params));
            return result.rows as R[];
          },
          async exec(sql: string) {
            await client.query(sql);
          },
        };
        const value = await work(tx);
        await client.query("COMMIT");
        return value;
      } catch (error) {
        try {
          await client.query("ROLLBACK");
        } catch (rollbackError) {
          broken = rollbackError as Error;
        }
        throw error;
      } finally {
        client.release(broken);
      }
    },
    async listen(channel, onPayload, onReconnect) {
      assertChannelName(channel);
      const entry = { onPayload, onReconnect };
      let entries = listeners.get(channel);
      const isNewChannel = !entries;
      if (!entries) {
        entries = new Set();
        listeners.set(channel, entries);
      }
      entries.add(entry);
      const client = await getListenClient();
      if (isNewChannel) await client.query(`LISTEN ${channel}`);
      return async () => {
        entries.delete(entry);
        if (entries.size === 0) {
          listeners.delete(channel);
          await listenClient?.query(`UNLISTEN ${channel}`).catch(() => undefined);
        }
      };
    },
    async notify(channel, payload) {
      await pool.query("SELECT pg_notify($1, $2)", [assertChannelName(channel), payload]);
    },
    async session() {
      const client = new pg.Client({ connectionString: options.connectionString, types: typeParsers });
      await client.connect();
      let lost: ((error?: Error) => void) | undefined;
      let released = false;
      const onDeath = (error?: Error) => {
        if (released) return;
        released = true;
        lost?.(error);
      };
      client.on("error", onDeath);
      client.on("end", () => onDeath());
      return {
        async query<R extends Row = Row>(sql: Sql, params?: readonly unknown[]) {
          return (await client.query(queryConfig(sql, params))).rows as R[];
        },
        async exec(sql: string) {
          await client.query(sql);
        },
        onLost(handler) {
          lost = handler;
        },
        async release() {
          released = true;
          await client.end().catch(() => undefined);
        },
      };
    },
    async close() {
      closed = true;
      const client = listenClient;
      listenClient = undefined;
      await client?.end().catch(() => undefined);
      await pool.end();
    },
  };
  return db;
};
