/**
 * The composition root: config → logger → store → api (→ broker → bridge,
 * as they land), and their start and stop. Nothing else wires components.
 */
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { buildHttpApp, type ReadinessReport } from "./api/app.ts";
import type { Config } from "./config/schema.ts";
import type { Logger } from "./log.ts";
import { createAccessFeed } from "./store/access-feed.ts";
import { createCredentialStore } from "./store/credentials.ts";
import type { Db } from "./store/db.ts";
import { readEvents } from "./store/event-log.ts";
import { migrate } from "./store/migrate.ts";
import { openDb } from "./store/open-db.ts";
import { createOrderStore } from "./store/orders.ts";
import { createPartnerStore } from "./store/partners.ts";
import { pruneHistory } from "./store/retention.ts";

export interface RunningBrewcast {
  ports: { http: number };
  adminToken: string;
  db: Db;
  stop(): Promise<void>;
}

const RETENTION_INTERVAL_MS = 3_600_000;

/** Turns EADDRINUSE into the one line an operator needs: which variable, which address. */
export const portInUseError = (variable: string, host: string, port: number, error: unknown): Error => {
  if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
    return new Error(
      `${variable}=${port}: ${host}:${port} is already in use (choose another port, or 0 for any free one)`,
    );
  }
  if ((error as NodeJS.ErrnoException).code === "EACCES") {
    return new Error(`${variable}=${port}: not allowed to bind ${host}:${port}`);
  }
  return error as Error;
};

export const openMigratedDb = async (config: Config, log: Logger): Promise<Db> => {
  const db = await openDb({ databaseUrl: config.DATABASE_URL, dataDir: config.BREWCAST_DATA_DIR, log });
  try {
    const applied = await migrate(db);
    if (applied.length > 0) log.info({ applied }, "migrations applied");
    return db;
  } catch (error) {
    await db.close();
    throw error;
  }
};

export const startBrewcast = async (config: Config, log: Logger): Promise<RunningBrewcast> => {
  const adminToken = config.BREWCAST_ADMIN_TOKEN ?? randomBytes(24).toString("base64url");
  if (!config.BREWCAST_ADMIN_TOKEN) {
    log.warn(
      { admin_token: adminToken },
      "BREWCAST_ADMIN_TOKEN not set: generated an admin token for this process only",
    );
  }
  const db = await openMigratedDb(config, log);
  const stops: (() => Promise<void>)[] = [() => db.close()];
  const stopAll = async () => {
    for (const stop of stops.reverse())
      await stop().catch((error) => log.error({ err: error }, "stop failed"));
  };

  try {
    const accessFeed = await createAccessFeed(db);
    stops.push(() => accessFeed.close());
    const credentials = createCredentialStore(db, { accessChanges: accessFeed });
    const partners = createPartnerStore(db);
    const orders = createOrderStore(db);

    const readiness = async (): Promise<ReadinessReport> => {
      try {
        await db.query("SELECT 1");
        return { ready: true, checks: { database: "ok" } };
      } catch (error) {
        return { ready: false, checks: { database: (error as Error).message } };
      }
    };

    const app = await buildHttpApp({
      log,
      adminToken,
      verifier: credentials,
      orders,
      partners,
      credentials,
      readEvents: (input) => readEvents(db, input),
      readiness,
    });
    try {
      await app.listen({ host: config.BREWCAST_HOST, port: config.BREWCAST_HTTP_PORT });
    } catch (error) {
      throw portInUseError("BREWCAST_HTTP_PORT", config.BREWCAST_HOST, config.BREWCAST_HTTP_PORT, error);
    }
    stops.push(() => app.close());
    const http = (app.server.address() as AddressInfo).port;

    if (config.BREWCAST_RETENTION_DAYS !== undefined) {
      const days = config.BREWCAST_RETENTION_DAYS;
      const prune = () =>
        pruneHistory(db, days)
          .then((result) => log.info({ ...result, retentionDays: days }, "history pruned"))
          .catch((error) => log.error({ err: error }, "history pruning failed"));
      void prune();
      const timer = setInterval(prune, RETENTION_INTERVAL_MS);
      timer.unref();
      stops.push(async () => clearInterval(timer));
    }

    log.info({ http, host: config.BREWCAST_HOST, database: db.kind }, "listening");
    return { ports: { http }, adminToken, db, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
};
