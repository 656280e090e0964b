/**
 * The delivery core's leader lock (domain's `LeaderLock` port): a
 * session-level advisory lock on a dedicated connection. If this process
 * dies, Postgres drops the connection and the lock with it, and a standby's
 * next attempt succeeds.
 *
 * Implements a port of src/domain/delivery.ts; imports domain and store only.
 */
import type { LeaderLock } from "../domain/delivery.ts";
import type { Db, DbSession } from "./db.ts";

/** Advisory lock key of the active bridge. */
const BRIDGE_LOCK_KEY = 0x62726964; // "brid"

/** Advisory lock key of the process that delivers webhooks (src/webhooks/delivery.ts). */
export const WEBHOOK_LOCK_KEY = 0x77686b73; // "whks"

export const createLeaderLock = (db: Db, key: number = BRIDGE_LOCK_KEY): LeaderLock => {
  let session: DbSession | undefined;
  let lostHandler: () => void = () => {};
  return {
    async tryAcquire() {
      if (!session) {
        const fresh = await db.session();
        fresh.onLost(() => {
          if (session !== fresh) return;
          session = undefined;
          lostHandler();
        });
        session = fresh;
      }
      const [row] = await session.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1) AS locked", [
        key,
      ]);
      return row?.locked === true;
    },
    onLost(handler) {
      lostHandler = handler;
    },
    async release() {
      const current = session;
      session = undefined;
      if (!current) return;
      await current.query("SELECT pg_advisory_unlock($1)", [key]).catch(() => undefined);
      await current.release();
    },
  };
};
