/**
 * Access changes (revocations, partner state) travel as NOTIFY on one
 * channel, sent inside the transaction that made them, so every process
 * sharing the database hears them once they are committed. The process that
 * made a change also announces it to its own subscribers as soon as it
 * committed (its NOTIFY comes back a little later), so that its next request
 * already sees it: the credential cache clears itself, no caller has to.
 */
import type { AccessChange, AccessChanges } from "../domain/access.ts";
import type { Db, Queryable, Unlisten } from "./db.ts";

export const ACCESS_CHANNEL = "brewcast_access";

export const publishAccessChange = async (tx: Queryable, change: AccessChange): Promise<void> => {
  await tx.query("SELECT pg_notify($1, $2)", [ACCESS_CHANNEL, JSON.stringify(change)]);
};

/** Where a store that changed access tells this process's subscribers, once committed. */
export interface AccessAnnouncer {
  announce(change: AccessChange): void;
}

export interface AccessFeed extends AccessChanges, AccessAnnouncer {
  close(): Promise<void>;
}

export const createAccessFeed = async (db: Db): Promise<AccessFeed> => {
  const handlers = new Set<(change: AccessChange) => void>();
  const deliver = (change: AccessChange) => {
    for (const handler of handlers) handler(change);
  };
  const unlisten: Unlisten = await db.listen(ACCESS_CHANNEL, (payload) => {
    let change: AccessChange;
    try {
      change = JSON.parse(payload) as AccessChange;
    } catch {
      return;
    }
    deliver(change);
  });
  return {
    // Subscribers hear a change twice (here, then its NOTIFY): every one of them is idempotent.
    announce: deliver,
    subscribe(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    close: unlisten,
  };
};
