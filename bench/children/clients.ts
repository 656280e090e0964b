/**
 * The consumers' child (lib/children.ts `spawnKid("clients")`): MQTT subscribers (raw-socket or
 * mqtt.js, clean or persistent sessions) and REST pollers that record when each event arrived,
 * keyed by (partner, seq), in named buckets, and count wire bytes; and the floor's reader
 * (lib/relay.ts). `report` matches a bucket's receipts against the writer's commits.
 *
 * Commands: loop, subscribe, disconnect, reset, poll, relay, count, report.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import type net from "node:net";
import mqtt from "mqtt";
import { watchEventLoop } from "../lib/child-tools.ts";
import { runChild, serveRpc } from "../lib/children.ts";
import type { LatencyReport, PollerSpec, SubscriberSpec } from "../lib/consumers.ts";
import { nowMs, sleep } from "../lib/machine.ts";
import { Receipts } from "../lib/receipts.ts";
import { readRelay } from "../lib/relay.ts";
import { percentile } from "../lib/stats.ts";
import type { Commits } from "../lib/writer.ts";
import { connectRawClient, publishPayload, publishTopic } from "../raw-mqtt.ts";

const log = (line: string) => process.stderr.write(`[clients] ${line}\n`);

/** Receipts of one consumer kind, and its wire traffic since the last reset. */
class Bucket extends Receipts {
  requests = 0;
  bytes = 0;
  consumersPerPartner = new Map<string, number>();
  startedAt = nowMs();
  override reset() {
    super.reset();
    this.requests = 0;
    this.bytes = 0;
    this.startedAt = nowMs();
  }
}

runChild("clients", async () => {
  const buckets = new Map<string, Bucket>();
  const bucket = (name: string) => {
    let b = buckets.get(name);
    if (!b) {
      b = new Bucket();
      buckets.set(name, b);
    }
    return b;
  };
  const mqttClients: { wireBytes: () => number; close: () => void; bucket: Bucket; seen: number }[] = [];
  const socketBytes = (socket: { bytesRead?: number; bytesWritten?: number } | undefined) =>
    (socket?.bytesRead ?? 0) + (socket?.bytesWritten ?? 0);
  const recordEvent = (b: Bucket, payload: Buffer) => {
    const t = nowMs();
    const event = JSON.parse(payload.toString()) as { partner_id: string; seq: number };
    b.record(event.partner_id, event.seq, t);
  };

  /** mqtt.js, when BENCH_SUBSCRIBER=mqttjs: what an application would use (its CPU a message: bench/README.md). */
  const connectMqttJs = async (spec: SubscriberSpec, b: Bucket) => {
    const client = await mqtt.connectAsync(spec.url, {
      protocolVersion: 4,
      clientId: spec.clientId ?? `bench-${randomUUID().slice(0, 12)}`,
      clean: !spec.persistent,
      reconnectPeriod: 0,
      ...(spec.username !== undefined ? { username: spec.username, password: spec.password } : {}),
    });
    client.on("message", (topic, payload) => {
      if (topic.includes("/orders/")) recordEvent(b, payload);
    });
    client.on("error", (error) => log(`subscriber error: ${error.message}`));
    await client.subscribeAsync(spec.filters, { qos: 1 });
    return {
      wireBytes: () => socketBytes(client.stream as unknown as net.Socket | undefined),
      close: () => void client.endAsync(true),
    };
  };

  /** The default: a raw-socket client (bench/raw-mqtt.ts), so the subscribers leave the CPU to brewcast. */
  const connectRaw = async (spec: SubscriberSpec, b: Bucket) => {
    const url = new URL(spec.url);
    const client = await connectRawClient({
      host: url.hostname,
      port: Number(url.port),
      clientId: spec.clientId ?? `bench-${randomUUID().slice(0, 12)}`,
      username: spec.username ?? "",
      password: spec.password ?? "",
      clean: !spec.persistent,
      onPublish: (body, qos) => {
        if (publishTopic(body).includes("/orders/")) recordEvent(b, publishPayload(body, qos));
      },
    });
    client.socket.on("error", (error) => log(`subscriber error: ${error.message}`));
    await client.subscribe(spec.filters, 1);
    return { wireBytes: () => socketBytes(client.socket), close: () => client.close() };
  };

  const connect = async (specs: SubscriberSpec[]) => {
    const connectOne = process.env.BENCH_SUBSCRIBER === "mqttjs" ? connectMqttJs : connectRaw;
    for (let i = 0; i < specs.length; i += 25) {
      await Promise.all(
        specs.slice(i, i + 25).map(async (spec) => {
          const b = bucket(spec.bucket);
          const { wireBytes, close } = await connectOne(spec, b);
          const entry = { wireBytes, close, bucket: b, seen: wireBytes() };
          mqttClients.push(entry);
          const partner = spec.filters[0]!.split("/")[1]!;
          b.consumersPerPartner.set(partner, (b.consumersPerPartner.get(partner) ?? 0) + 1);
        }),
      );
    }
    return { connected: mqttClients.length };
  };

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1_000 });
  const socketSeen = new WeakMap<net.Socket, number>();
  const get = (url: string, secret: string, b: Bucket) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      let socket: net.Socket | undefined;
      const req = http.get(url, { agent, headers: { authorization: `Bearer ${secret}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          if (socket) {
            const total = socket.bytesRead + socket.bytesWritten;
            b.bytes += total - (socketSeen.get(socket) ?? 0);
            socketSeen.set(socket, total);
          }
          b.requests++;
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() });
        });
        res.on("error", reject);
      });
      req.on("socket", (s) => {
        socket = s;
      });
      req.on("error", reject);
    });

  const poll = async (spec: PollerSpec & { partnerId: string }) => {
    const b = bucket(spec.bucket);
    const base = `${spec.baseUrl}/v1/events`;
    const first = await get(`${base}?after=0&limit=1`, spec.secret, b);
    let after = (JSON.parse(first.body) as { head_seq: number }).head_seq;
    const end = nowMs() + spec.seconds * 1000;
    // Pollers start spread over one interval, as independent clients would be.
    await sleep(Math.random() * spec.intervalMs);
    let errors = 0;
    while (nowMs() < end) {
      const started = nowMs();
      const response = await get(`${base}?after=${after}&limit=${spec.limit}`, spec.secret, b).catch(
        () => undefined,
      );
      const t = nowMs();
      if (response?.status === 200) {
        const page = JSON.parse(response.body) as { events: { partner_id: string; seq: number }[] };
        for (const event of page.events) b.record(event.partner_id, event.seq, t);
        const last = page.events.at(-1);
        if (last) after = last.seq;
        if (page.events.length === spec.limit) continue; // more waiting: read on at once
      } else errors++;
      const wait = started + spec.intervalMs - nowMs();
      if (wait > 0) await sleep(wait);
    }
    return errors;
  };

  const report = (name: string, commits: Commits | undefined): LatencyReport => {
    const b = bucket(name);
    for (const entry of mqttClients) {
      if (entry.bucket !== b) continue;
      const now = entry.wireBytes();
      b.bytes += now - entry.seen;
      entry.seen = now;
    }
    const seconds = (nowMs() - b.startedAt) / 1000;
    const result: LatencyReport = {
      bucket: name,
      received: 0,
      expected: 0,
      unmatched: 0,
      p50: Number.NaN,
      p90: Number.NaN,
      p99: Number.NaN,
      max: Number.NaN,
      requests: b.requests,
      bytes: b.bytes,
      seconds,
    };
    if (!commits) {
      result.received = b.t.length;
      return result;
    }
    // (partner, seq) → commit time
    const committed = new Map<string, Map<number, number>>();
    for (let i = 0; i < commits.t.length; i++) {
      const partner = commits.partners[commits.p[i]!]!;
      let bySeq = committed.get(partner);
      if (!bySeq) {
        bySeq = new Map();
        committed.set(partner, bySeq);
      }
      bySeq.set(commits.seq[i]!, commits.t[i]!);
      result.expected += b.consumersPerPartner.get(partner) ?? 0;
    }
    const latencies: number[] = [];
    for (let i = 0; i < b.t.length; i++) {
      const partner = b.names[b.p[i]!]!;
      const at = committed.get(partner)?.get(b.seq[i]!);
      if (at === undefined) {
        result.unmatched++;
        continue;
      }
      latencies.push(b.t[i]! - at);
    }
    const sorted = Float64Array.from(latencies).sort();
    result.received = sorted.length;
    result.p50 = percentile(sorted, 0.5);
    result.p90 = percentile(sorted, 0.9);
    result.p99 = percentile(sorted, 0.99);
    result.max = sorted.length ? sorted[sorted.length - 1]! : Number.NaN;
    return result;
  };

  const loop = watchEventLoop();
  serveRpc({}, async (cmd, args) => {
    switch (cmd) {
      case "loop":
        return loop.take();
      case "subscribe":
        return connect(args as SubscriberSpec[]);
      case "disconnect": {
        // Closes the subscribers of these buckets (a persistent session stays, offline).
        const names = new Set(args as string[]);
        let closed = 0;
        for (let i = mqttClients.length - 1; i >= 0; i--) {
          const entry = mqttClients[i]!;
          if (![...names].some((name) => buckets.get(name) === entry.bucket)) continue;
          entry.close();
          mqttClients.splice(i, 1);
          closed++;
        }
        for (const name of names) bucket(name).consumersPerPartner.clear();
        return { closed };
      }
      case "reset":
        for (const name of args as string[]) {
          const b = bucket(name);
          b.reset();
          for (const entry of mqttClients) if (entry.bucket === b) entry.seen = entry.wireBytes();
        }
        return null;
      case "poll": {
        const { specs } = args as { specs: (PollerSpec & { partnerId: string })[] };
        for (const spec of specs) bucket(spec.bucket).consumersPerPartner.clear();
        for (const spec of specs) {
          const b = bucket(spec.bucket);
          b.consumersPerPartner.set(spec.partnerId, (b.consumersPerPartner.get(spec.partnerId) ?? 0) + 1);
        }
        const errors = await Promise.all(specs.map(poll));
        return { errors: errors.reduce((a, b) => a + b, 0) };
      }
      case "relay": {
        const { port, partners, bucket: name } = args as { port: number; partners: string[]; bucket: string };
        const b = bucket(name);
        for (const partner of partners) b.consumersPerPartner.set(partner, 1);
        await readRelay(port, (partner, seq, t) => b.record(partner, seq, t));
        return null;
      }
      case "count": {
        const b = bucket(args as string);
        return { count: b.t.length, firstAt: b.firstAt, lastAt: b.lastAt };
      }
      case "report": {
        const { bucket: name, commits } = args as { bucket: string; commits?: Commits };
        return report(name, commits);
      }
      default:
        throw new Error(`unknown command ${cmd}`);
    }
  });
});
