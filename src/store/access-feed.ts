/**
 * Access changes (revocations, partner state) travel as NOTIFY on one
 * channel, sent inside the transaction that made them, so every process
 * sharing the database hears them once they are committed.
 */
import type { AccessChange, AccessChanges } from "../domain/access.ts";
import type { Db, Queryable, Unlisten } from "./db.ts";

export const ACCESS_CHANNEL = "brewcast_access";

export const publishAccessChange = async (tx: Queryable, change: AccessChange): Promise<void> => {
  await tx.query("SELECT pg_notify($1, $2)", [ACCESS_CHANNEL, JSON.stringify(change)]);
};

export interface AccessFeed extends AccessChanges {
  close(): Promise<void>;
}

export const createAccessFeed = async (db: Db): Promise<AccessFeed> => {
  const handlers = new Set<(change: AccessChange) => void>();
  const unlisten: Unlisten = await db.listen(ACCESS_CHANNEL, (payload) => {
    let change: AccessChange;
    try {
      change = JSON.parse(payload) as AccessChange;
    } catch {
      return;
    }
    for (const handler of handlers) handler(change);
  });
  return {
    subscribe(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    close: unlisten,
  };
};
