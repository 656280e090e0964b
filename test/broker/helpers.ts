/**
 * Broker test harness: a fresh database with seeded partners, the real
 * credential store and access feed, a broker on port 0, and real clients
 * (mqtt.js with protocolVersion 4, and mosquitto_sub/_pub child processes).
 */
import { type ChildProcess, spawn } from "node:child_process";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { type Broker, type BrokerOptions, startBroker } from "../../src/broker/index.ts";
import { createAccessFeed } from "../../src/store/access-feed.ts";
import { type CredentialStore, createCredentialStore } from "../../src/store/credentials.ts";
import { createSessionLog, createSessionStore } from "../../src/store/mqtt-sessions.ts";
import { createPartnerStore, type PartnerStore } from "../../src/store/partners.ts";
import { type SeededPartner, seedPartner } from "../support/fixtures.ts";
import { createTestDb, silentLog, type TestDb } from "../support/test-db.ts";

export interface Harness {
  testDb: TestDb;
  broker: Broker;
  /** Another broker on the same database and access feed, with other options (closed with the harness). */
  extraBroker(overrides: Partial<BrokerOptions>): Promise<{ broker: Broker; url: string }>;
  credentials: CredentialStore;
  partners: PartnerStore;
  url: string;
  seed(shops?: number): Promise<SeededPartner>;
  close(): Promise<void>;
}

/** Listeners and limits of every test broker: port 0, the product's defaults where a test does not say otherwise. */
export const TEST_BROKER_LIMITS = {
  host: "127.0.0.1",
  mqttPort: 0,
  maxPacketBytes: 65_536,
  maxConnectionsPerPartner: 1000,
  drainTimeoutMs: 10_000,
  sessionTtlSeconds: 3600,
  log: silentLog,
} satisfies Partial<BrokerOptions>;

export const startHarness = async (overrides: Partial<BrokerOptions> = {}): Promise<Harness> => {
  const testDb = await createTestDb();
  const accessChanges = await createAccessFeed(testDb.db);
  const credentials = createCredentialStore(testDb.db, { accessChanges });
  const partners = createPartnerStore(testDb.db);
  const options: BrokerOptions = {
    ...TEST_BROKER_LIMITS,
    verifier: credentials,
    accessChanges,
    sessions: { store: createSessionStore(testDb.db), log: createSessionLog(testDb.db) },
    loginFailureLimit: 1000,
    ...overrides,
  };
  const broker = await startBroker(options);
  const extras: Broker[] = [];
  return {
    testDb,
    broker,
    credentials,
    partners,
    url: `mqtt://127.0.0.1:${broker.ports.mqtt}`,
    seed: (shops = 2) => seedPartner(testDb.db, { shops }),
    async extraBroker(more) {
      const extra = await startBroker({ ...options, ...more });
      extras.push(extra);
      return { broker: extra, url: `mqtt://127.0.0.1:${extra.ports.mqtt}` };
    },
    async close() {
      for (const extra of extras) await extra.close();
      await broker.close();
      await accessChanges.close();
      await testDb.cleanup();
    },
  };
};

export type ConnackError = Error & { code?: number };

/** Connects with mqtt.js (MQTT 3.1.1, no reconnect); rejects with the CONNACK code on refusal. */
export const connect = (
  url: string,
  options: IClientOptions = {},
  /** Called before CONNECT is sent: attach listeners that must not miss a queued message. */
  prepare?: (client: MqttClient) => void,
): Promise<MqttClient> =>
  new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      ...options,
    });
    prepare?.(client);
    const onError = (error: ConnackError) => {
      client.end(true);
      reject(error);
    };
    client.once("error", onError);
    client.once("connect", () => {
      client.off("error", onError);
      client.on("error", () => undefined);
      resolve(client);
    });
    client.once("close", () => reject(new Error("closed before CONNACK")));
  });

export const login = (
  url: string,
  cred: { id: string; secret: string },
  options: IClientOptions = {},
  prepare?: (client: MqttClient) => void,
) => connect(url, { username: cred.id, password: cred.secret, ...options }, prepare);

/** The CONNACK return code of a refused login. */
export const connackCode = async (url: string, options: IClientOptions): Promise<number | string> => {
  try {
    const client = await connect(url, options);
    client.end(true);
    return 0;
  } catch (error) {
    return (error as ConnackError).code ?? (error as Error).message;
  }
};

/** Resolves with the granted QoS list (128 = refused). */
export const subscribeGranted = async (
  client: MqttClient,
  filter: string,
  qos: 0 | 1 | 2 = 1,
): Promise<number> => {
  try {
    const granted = await client.subscribeAsync(filter, { qos });
    return granted[0]!.qos;
  } catch (error) {
    const granted = (error as { packet?: { granted?: number[] } }).packet?.granted;
    if (granted) return granted[0]!;
    throw error;
  }
};

export interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

/** Collects messages; `waitFor(n)` resolves once n arrived. */
export const collect = (client: MqttClient) => {
  const messages: Received[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  client.on("message", (topic, payload, packet) => {
    messages.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain });
    for (const w of [...waiters]) {
      if (messages.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  return {
    messages,
    waitFor: (n: number) =>
      messages.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
  };
};

/** Resolves when the client's connection closes. */
export const closed = (client: MqttClient): Promise<void> =>
  client.connected ? new Promise((resolve) => client.once("close", () => resolve())) : Promise.resolve();

export interface MosquittoProcess {
  child: ChildProcess;
  stdout: string[];
  stderr: () => string;
  exit: Promise<number | null>;
  /** Resolves once stdout has `n` lines. */
  lines(n: number): Promise<string[]>;
}

export const runMosquitto = (
  command: "mosquitto_sub" | "mosquitto_pub",
  args: string[],
  /** Line-buffer stdout (coreutils' stdbuf): `-d` lines reach us as they are printed. */
  options: { lineBuffered?: boolean } = {},
): MosquittoProcess => {
  const argv = [command, "-V", "mqttv311", ...args];
  const [file, ...rest] = options.lineBuffered ? ["stdbuf", "-oL", ...argv] : argv;
  const child = spawn(file!, rest, { stdio: ["ignore", "pipe", "pipe"] });
  const stdout: string[] = [];
  let err = "";
  let buffer = "";
  const waiters: { n: number; resolve: (l: string[]) => void }[] = [];
  child.stdout!.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split("\n");
    buffer = parts.pop()!;
    stdout.push(...parts);
    for (const w of [...waiters]) {
      if (stdout.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(stdout.slice());
      }
    }
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  // "close", not "exit": by then stdout and stderr are fully read.
  const exit = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    child,
    stdout,
    stderr: () => err,
    exit,
    lines: (n) =>
      stdout.length >= n
        ? Promise.resolve(stdout.slice())
        : new Promise((resolve) => waiters.push({ n, resolve })),
  };
};

/** Polls a condition on the event loop (no fixed sleep): resolves when true, rejects after `timeoutMs`. */
export const until = async (
  condition: () => boolean,
  timeoutMs = 5_000,
  what = "condition",
): Promise<void> => {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};
