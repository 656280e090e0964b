/**
 * History retention: prunes events older than BREWCAST_RETENTION_DAYS at
 * start and every hour; the timer stops in the `background` phase.
 */
import type { Logger } from "../log.ts";
import type { Db } from "../store/db.ts";
import { pruneHistory } from "../store/retention.ts";
import type { Shutdown } from "./shutdown.ts";

const RETENTION_INTERVAL_MS = 3_600_000;

export const scheduleRetention = (db: Db, days: number, log: Logger, shutdown: Shutdown): void => {
  const prune = () =>
    pruneHistory(db, days)
      .then((result) => log.info({ ...result, retentionDays: days }, "history pruned"))
      .catch((error) => log.error({ err: error }, "history pruning failed"));
  void prune();
  const timer = setInterval(prune, RETENTION_INTERVAL_MS);
  timer.unref();
  shutdown.onStop("background", async () => clearInterval(timer));
};
