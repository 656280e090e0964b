/**
 * The Db port: the one small interface the rest of the code sees, whatever
 * database is behind it (Postgres through `pg`, or embedded PGlite).
 * Both adapters return int8 as number and timestamptz as Date.
 */

export type Row = Record<string, unknown>;

/**
 * A statement on a hot path, prepared once per connection under `name` (Postgres then parses
 * and plans it once, not on every call: half the server time of a small query). PGlite runs its
 * text. Names must be unique per text; only for statements whose plan does not depend on their
 * parameters' values.
 */
export interface NamedStatement {
  name: string;
  text: string;
}

export type Sql = string | NamedStatement;

export interface Queryable {
  query<R extends Row = Row>(sql: Sql, params?: readonly unknown[]): Promise<R[]>;
  /** Runs a script of several statements, without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface TransactionOptions {
  isolation?: "read committed" | "repeatable read" | "serializable";
  readOnly?: boolean;
}

export type Unlisten = () => Promise<void>;

/** One dedicated connection, for session state such as advisory locks. */
export interface DbSession extends Queryable {
  /** Called once if the connection dies (session state, such as locks, is gone). */
  onLost(handler: (error?: Error) => void): void;
  release(): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: "pg" | "pglite";
  /** Runs `work` in one transaction: commits when it resolves, rolls back when it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * Subscribes to a NOTIFY channel. `onReconnect` is called after the
   * listening connection was lost and re-established, when notifications
   * may have been missed.
   *
   * `fromOwnRole` tells whether the notification came from a session logged in
   * as this Db's own database role, which may write the tables anyway: any role
   * that can connect may NOTIFY any channel. PGlite: always (no other process
   * reaches it). Postgres: from pg_stat_activity, checked every 10 s per
   * sending backend; false until checked.
   */
  listen(
    channel: string,
    onPayload: (payload: string, fromOwnRole: boolean) => void,
    onReconnect?: () => void,
  ): Promise<Unlisten>;
  notify(channel: string, payload: string): Promise<void>;
  /** A dedicated connection outside the pool (PGlite: its one connection, shared). */
  session(): Promise<DbSession>;
  close(): Promise<void>;
}

export const beginStatement = (options: TransactionOptions = {}): string => {
  const parts = ["BEGIN"];
  if (options.isolation) parts.push(`ISOLATION LEVEL ${options.isolation.toUpperCase()}`);
  if (options.readOnly) parts.push("READ ONLY");
  return parts.join(" ");
};

/** Channel names go into LISTEN unquoted-by-parameter, so only simple identifiers are allowed. */
export const assertChannelName = (channel: string): string => {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) throw new Error(`invalid NOTIFY channel name: ${channel}`);
  return channel;
};
