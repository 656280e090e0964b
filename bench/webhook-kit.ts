/**
 * Shared parts of the event stream and webhook benches (bench/sse-latency.ts,
 * bench/webhook-delivery.ts, issue 18), on top of bench/harness.ts and
 * bench/bridge-kit.ts:
 *
 * - `Receipts` and `latencyOf`: receipt times keyed by (partner, seq), matched
 *   against the writer's commit times (bridge-kit's `Commits`), first receipt
 *   of each event only (a redelivery is counted, not timed).
 * - `spawnWebhookKid("receiver")`: a fast local webhook receiver in a child
 *   process: node:http on 127.0.0.1, 204 at once; it echoes the verification
 *   challenge (`{"type":"webhook.verification","challenge"}` →
 *   `{"challenge"}`), records each event's receipt (when its body has been
 *   read) in a bucket named by the path (`/hook/<partner>` for brewcast,
 *   `/floor/…` for the floors), and verifies every 50th signed request with
 *   the standardwebhooks library when it knows the secret.
 * - `spawnWebhookKid("floor")`: the throughput floor, a bare undici loop in a
 *   child process: a keep-alive `Agent`, one request in flight, POSTing given
 *   event bodies with the headers brewcast sends (`webhookHeaders`: the same
 *   signing) to the receiver.
 * - `createHttpFloor(url)`: the latency floor, used inside bridge-kit's
 *   brewcast child (env `BENCH_HTTP_FLOOR_URL`): the writer POSTs each
 *   committed event the moment its round trip returned, one request in flight
 *   per partner, as a webhook sender with one endpoint per partner would.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Webhook } from "standardwebhooks";
import { Agent, request } from "undici";
import type { OrderEvent } from "../src/domain/events.ts";
import { webhookHeaders } from "../src/webhooks/signing.ts";
import { type Kid, serveRpc, spawnRpcChild } from "./lib/children.ts";
import { nowMs } from "./lib/machine.ts";
import { Receipts, summarise } from "./lib/receipts.ts";
import { fmt, percentile } from "./lib/stats.ts";
import type { Commits } from "./lib/writer.ts";

export { fmt, Receipts, serveRpc, summarise };

const log = (line: string) => process.stderr.write(`[webhook-kit] ${line}\n`);

// ---------------------------------------------------------------- receipts and latency

export interface Latency {
  /** Events of the commits received (first receipt each). */
  received: number;
  /** Commits of the partners this channel serves. */
  expected: number;
  /** Receipts of an event already received (redeliveries). */
  repeats: number;
  /** Receipts of events the commits do not hold (earlier phases). */
  unmatched: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Commit → first receipt of each committed event of `partners` (all the commits' partners by default). */
export const latencyOf = (commits: Commits, receipts: Receipts, partners?: Set<string>): Latency => {
  const committed = new Map<string, number>();
  let expected = 0;
  for (let i = 0; i < commits.t.length; i++) {
    const partner = commits.partners[commits.p[i]!]!;
    if (partners && !partners.has(partner)) continue;
    committed.set(`${partner}/${commits.seq[i]}`, commits.t[i]!);
    expected++;
  }
  const seen = new Set<string>();
  const latencies: number[] = [];
  let repeats = 0;
  let unmatched = 0;
  for (let i = 0; i < receipts.t.length; i++) {
    const key = `${receipts.names[receipts.p[i]!]}/${receipts.seq[i]}`;
    const at = committed.get(key);
    if (at === undefined) {
      unmatched++;
      continue;
    }
    if (seen.has(key)) {
      repeats++;
      continue;
    }
    seen.add(key);
    latencies.push(receipts.t[i]! - at);
  }
  const sorted = Float64Array.from(latencies).sort();
  return {
    received: sorted.length,
    expected,
    repeats,
    unmatched,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
  };
};

// ---------------------------------------------------------------- child processes (RPC over IPC)

export type WebhookKid = Kid;

/** Forks `modulePath --kid <mode>` and talks to it (the same RPC as every bench child: lib/children.ts). */
export const spawnRpcKid = (modulePath: string, mode: string, env: Record<string, string> = {}) =>
  spawnRpcChild(modulePath, ["--kid", mode], { label: mode, env, killAfterMs: 10_000 });

const KIT_PATH = fileURLToPath(import.meta.url);

export const spawnWebhookKid = (mode: "receiver" | "floor") => spawnRpcKid(KIT_PATH, mode);

// ---------------------------------------------------------------- the receiver

const VERIFY_EVERY = 50;

const receiverMode = async () => {
  const buckets = new Map<string, Receipts>();
  const bucket = (name: string) => {
    let b = buckets.get(name);
    if (!b) {
      b = new Receipts();
      buckets.set(name, b);
    }
    return b;
  };
  const verifiers = new Map<string, Webhook>(); // bucket → the endpoint's secret
  let requests = 0;
  let verified = 0;
  let verifyFailed = 0;
  let challenges = 0;
  let bad = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const t = nowMs();
      requests++;
      const name = (req.url ?? "/").split("?")[0]!.split("/").slice(0, 3).join("/");
      const body = chunks.length === 1 ? chunks[0]!.toString() : Buffer.concat(chunks).toString();
      let payload: { type?: string; challenge?: string; partner_id?: string; seq?: number };
      try {
        payload = JSON.parse(body) as typeof payload;
      } catch {
        bad++;
        res.writeHead(400).end();
        return;
      }
      if (payload.type === "webhook.verification") {
        challenges++;
        const answer = JSON.stringify({ challenge: payload.challenge });
        res.writeHead(200, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(answer),
        });
        res.end(answer);
        return;
      }
      res.writeHead(204).end();
      if (typeof payload.partner_id !== "string" || typeof payload.seq !== "number") {
        bad++;
        return;
      }
      bucket(name).record(payload.partner_id, payload.seq, t);
      const verifier = verifiers.get(name);
      if (verifier && requests % VERIFY_EVERY === 0) {
        try {
          verifier.verify(body, req.headers as Record<string, string>);
          verified++;
        } catch {
          verifyFailed++;
        }
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  serveRpc(
    { port },
    async (cmd, args) => {
      switch (cmd) {
        case "secret": {
          const { bucket: name, secret } = args as { bucket: string; secret: string };
          verifiers.set(name, new Webhook(secret));
          return null;
        }
        case "reset":
          for (const name of args as string[]) bucket(name).reset();
          return null;
        case "count": {
          const names = args as string[];
          let count = 0;
          let firstAt = Number.POSITIVE_INFINITY;
          let lastAt = 0;
          const distinct = new Set<string>();
          for (const name of names) {
            const b = bucket(name);
            count += b.count;
            firstAt = Math.min(firstAt, b.firstAt);
            lastAt = Math.max(lastAt, b.lastAt);
            for (let i = 0; i < b.t.length; i++) distinct.add(`${b.names[b.p[i]!]}/${b.seq[i]}`);
          }
          return { count, distinct: distinct.size, firstAt, lastAt };
        }
        case "latency": {
          const { buckets: names, commits } = args as { buckets: string[]; commits: Commits };
          const merged = new Receipts();
          for (const name of names) {
            const b = bucket(name);
            for (let i = 0; i < b.t.length; i++) merged.record(b.names[b.p[i]!]!, b.seq[i]!, b.t[i]!);
          }
          return latencyOf(commits, merged);
        }
        case "stats":
          return { requests, verified, verifyFailed, challenges, bad };
        default:
          throw new Error(`unknown command ${cmd}`);
      }
    },
    async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  );
};

// ---------------------------------------------------------------- the floors

/** A throwaway Standard Webhooks secret: the floors sign like brewcast does, with their own key. */
export const floorSecret = (): string => `whsec_${randomBytes(24).toString("base64")}`;

const messageId = (event: { partner_id: string; seq: number }) => `evt_${event.partner_id}_${event.seq}`;

/** POSTs one body with brewcast's headers; true on 2xx. */
const post = async (
  agent: Agent,
  url: string,
  secret: string,
  event: { partner_id: string; seq: number },
  body: string,
) => {
  const response = await request(url, {
    method: "POST",
    dispatcher: agent,
    headers: webhookHeaders([secret], { id: messageId(event), timestamp: new Date(), body }),
    body,
  });
  for await (const _ of response.body) {
    // drain (a 204 has none)
  }
  return response.statusCode >= 200 && response.statusCode < 300;
};

/**
 * The throughput floor: `bodies` (event JSON, as brewcast sends them) POSTed one at a time,
 * keep-alive, to `url`. Returns what it took, from the first request to the last answer.
 */
const floorMode = async () => {
  const agent = new Agent({ keepAliveTimeout: 60_000, connections: 1 });
  const secret = floorSecret();
  serveRpc(
    {},
    async (cmd, args) => {
      if (cmd !== "post") throw new Error(`unknown command ${cmd}`);
      const { url, bodies } = args as { url: string; bodies: string[] };
      let failed = 0;
      const started = nowMs();
      for (const body of bodies) {
        const event = JSON.parse(body) as { partner_id: string; seq: number };
        if (!(await post(agent, url, secret, event, body).catch(() => false))) failed++;
      }
      return { sent: bodies.length, failed, ms: nowMs() - started };
    },
    () => agent.close(),
  );
};

/**
 * The latency floor, in the writer's process: each committed event POSTed to `${url}/<partner>`
 * at once, one request in flight per partner (the next waits in a queue), keep-alive.
 */
export const createHttpFloor = (url: string) => {
  const agent = new Agent({ keepAliveTimeout: 60_000, connections: 64 });
  const secret = floorSecret();
  const queues = new Map<string, OrderEvent[]>();
  const busy = new Set<string>();
  let failed = 0;
  const pump = async (partner: string) => {
    busy.add(partner);
    const queue = queues.get(partner)!;
    const target = `${url}/${encodeURIComponent(partner)}`;
    while (queue.length > 0) {
      const event = queue.shift()!;
      if (!(await post(agent, target, secret, event, JSON.stringify(event)).catch(() => false))) failed++;
    }
    busy.delete(partner);
  };
  return {
    send(event: OrderEvent) {
      let queue = queues.get(event.partner_id);
      if (!queue) {
        queue = [];
        queues.set(event.partner_id, queue);
      }
      queue.push(event);
      if (!busy.has(event.partner_id)) void pump(event.partner_id);
    },
    get failed() {
      return failed;
    },
    close: () => agent.close(),
  };
};

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const mode = process.argv[process.argv.indexOf("--kid") + 1];
  const modes: Record<string, () => Promise<void>> = { receiver: receiverMode, floor: floorMode };
  const run = mode ? modes[mode] : undefined;
  if (!run) {
    process.stderr.write("usage: node --import tsx bench/webhook-kit.ts --kid <receiver|floor>\n");
    process.exit(2);
  }
  run().catch((error) => {
    log(`${mode} failed: ${(error as Error).stack ?? error}`);
    process.exit(1);
  });
}
