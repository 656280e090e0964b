/**
 * Whole-process rigs: brewcast in a child of its own (bench/children/brewcast.ts) on a throwaway
 * database with partners set up, and (`startLoadRig`) a writer and subscribers in processes of
 * their own beside it.
 */
import { type BenchPartner, benchAdminToken, createPartners, pinNormal } from "./admin.ts";
import { type Kid, spawnKid } from "./children.ts";
import { type SessionKind, subscriberSpecs } from "./consumers.ts";
import { type BenchDatabase, createBenchDatabase } from "./database.ts";
import { sleep } from "./machine.ts";
import { onCleanup } from "./run.ts";
import type { Commits, WriteRequest } from "./writer.ts";

const log = (line: string) => process.stderr.write(`[rig] ${line}\n`);

/**
 * A throwaway database (dropped at cleanup), a fresh admin token, and the environment a brewcast
 * under test runs with on them (DATABASE_URL, BREWCAST_ADMIN_TOKEN, LOG_LEVEL=warn). The
 * per-credential rate limit is lifted: these benches measure throughput, and a writer or load
 * generator with one credential a partner would otherwise measure the limit (bench:storm, which
 * measures the limit at work, sets its own environment).
 */
export const prepareBrewcast = async (
  log: (line: string) => void,
  createDatabase: () => Promise<BenchDatabase> = createBenchDatabase,
) => {
  const db = await createDatabase();
  onCleanup(() => db.drop());
  log(`database ${db.name}`);
  const adminToken = benchAdminToken();
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    BREWCAST_ADMIN_TOKEN: adminToken,
    LOG_LEVEL: "warn",
    BREWCAST_RATE_LIMIT_REQUESTS: "1000000",
  };
  return { db, adminToken, env };
};

export interface BrewcastRig {
  db: BenchDatabase;
  adminToken: string;
  /** The environment brewcast runs with (a writer child takes the same). */
  env: Record<string, string>;
  brewcast: Kid;
  baseUrl: string;
  partners: BenchPartner[];
}

/**
 * A throwaway database, brewcast (role BENCH_ROLE, "all" by default) in its own process with a
 * writer in it, and `partners` partners `${tag}-pNNN` of `shops` shops each, pinned at normal.
 */
export const startBrewcastRig = async (options: {
  tag: string;
  partners: number;
  shops: number;
  serverFlags?: string[];
  /** The writer's pool (BENCH_WRITER_CONNECTIONS); its default (16) when absent. */
  writerConnections?: number;
  createDatabase?: () => Promise<BenchDatabase>;
  log: (line: string) => void;
}): Promise<BrewcastRig> => {
  const { db, adminToken, env } = await prepareBrewcast(options.log, options.createDatabase);
  if (options.writerConnections !== undefined)
    env.BENCH_WRITER_CONNECTIONS = String(options.writerConnections);
  const brewcast = await spawnKid("brewcast", env, options.serverFlags ?? []);
  const baseUrl = `http://127.0.0.1:${brewcast.info.http}`;
  options.log(`brewcast pid ${brewcast.pid}: http ${brewcast.info.http}, mqtt ${brewcast.info.mqtt}`);
  const partners = await createPartners(baseUrl, adminToken, options.partners, options.shops, options.tag);
  await pinNormal(baseUrl, adminToken, partners);
  return { db, adminToken, env, brewcast, baseUrl, partners };
};

/** A write request for a writer child: `rate` events/s over every partner's shops for `seconds`. */
export const writeRequest = (
  partners: BenchPartner[],
  request: Omit<WriteRequest, "targets">,
): WriteRequest => ({ ...request, targets: partners.map((p) => ({ id: p.id, shops: p.shops })) });

// ---------------------------------------------------------------- the whole-process rig

export interface LoadRig {
  dbUrl: string;
  dbName: string;
  brewcast: Kid;
  writer: Kid;
  clients: Kid;
  partners: BenchPartner[];
  baseUrl: string;
  /** The subscribers' sessions now. */
  session: SessionKind;
  /**
   * Closes the subscribers and connects new ones (a new client id each, so a persistent one is a
   * new session: nothing to replay, the live path only).
   */
  resubscribe(session: SessionKind): Promise<void>;
  /** Writes at `rate` for `seconds` from the writer process (doorbell wake-up). */
  write(rate: number, seconds: number): Promise<Commits>;
  /** Receipts counted by the subscribers since the last call. */
  takeReceipts(): Promise<number>;
}

/**
 * The whole process (role "all") with `partners` partners, one QoS 1
 * subscriber each (a child process), and a writer in another process that
 * creates orders through the store and rings the doorbell after each commit.
 */
export const startLoadRig = async (options: {
  partners: number;
  shops: number;
  serverFlags: string[];
  writerConnections?: number;
  /** The subscribers' sessions at start (default clean). */
  session?: SessionKind;
  createDatabase: () => Promise<BenchDatabase>;
}): Promise<LoadRig> => {
  const connections = options.writerConnections ?? 16;
  const { db, env, brewcast, baseUrl, partners } = await startBrewcastRig({
    tag: "load",
    partners: options.partners,
    shops: options.shops,
    serverFlags: options.serverFlags,
    writerConnections: connections,
    createDatabase: options.createDatabase,
    log,
  });
  const writer = await spawnKid("writer", env);
  const clients = await spawnKid("clients");
  let generation = 0;
  const subscribe = (session: SessionKind) =>
    clients.call(
      "subscribe",
      subscriberSpecs(brewcast.info.mqtt, partners, 1, "load", session, `rig${++generation}`),
    );
  const session = options.session ?? "clean";
  await subscribe(session);
  log(
    `brewcast pid ${brewcast.pid}, writer pid ${writer.pid}, ${partners.length} subscribers, ${session} sessions (pid ${clients.pid})`,
  );
  const rig: LoadRig = {
    dbUrl: db.url,
    dbName: db.name,
    brewcast,
    writer,
    clients,
    partners,
    baseUrl,
    session,
    async resubscribe(next) {
      await clients.call("disconnect", ["load"]);
      await sleep(500);
      await subscribe(next);
      rig.session = next;
      await sleep(1_000);
      await clients.call("reset", ["load"]);
    },
    write: (rate, seconds) =>
      writer.call<Commits>("write", writeRequest(partners, { rate, seconds, connections, wake: "doorbell" })),
    async takeReceipts() {
      const { count } = await clients.call<{ count: number }>("count", "load");
      await clients.call("reset", ["load"]);
      return count;
    },
  };
  return rig;
};
