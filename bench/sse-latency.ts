/**
 * Commit → receipt latency of the event stream (issue 18): Server-Sent Events
 * (`GET /v1/events/stream`) beside MQTT QoS 1, both at once in the same run,
 * and the machine's floor (a bare socket at commit, bench/bridge-kit.ts).
 *
 *   npm run bench:sse-latency                 # 3 rounds × 15 s, 200 events/s over 5 partners (~1.5 min)
 *   npm run bench:sse-latency -- --quick      # 1 round × 5 s
 *   npm run bench:sse-latency -- --rate 500 --rounds 2 --seconds 20
 *
 * - brewcast (role all) runs in its own process with the writer in it
 *   (bridge-kit's brewcast child): `createOrderStore().create()` paced at the
 *   rate on 16 connections, each committed event handed to what the API's
 *   `onCommitted` is (`internalsOf(running).committed`): the bridge takes it
 *   in-process and the open event streams are woken.
 * - The consumers run in one process of their own (this file, `--kid
 *   consumers`): per partner one raw-socket MQTT 3.1.1 subscriber at QoS 1
 *   (bench/raw-mqtt.ts) on `partners/{p}/shops/+/orders/+`, and one SSE
 *   client (plain node:http, `Authorization: Bearer`, text/event-stream
 *   parsed by hand; `event: cursor` messages ignored), plus the floor's reader.
 * - Latency = the consumer's receipt time (the chunk holding the event
 *   arrived) − the time the writer's round trip returned, both
 *   `process.hrtime` (CLOCK_MONOTONIC, shared by every process). Every
 *   channel is measured on the same commits at the same moments, so no ABBA
 *   is needed; each round is reported.
 */
import http from "node:http";
import net from "node:net";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import {
  type Commits,
  createPartners,
  median,
  nowMs,
  pinNormal,
  sleep,
  spawnKid,
  type WriteRequest,
  waitCaughtUp,
} from "./bridge-kit.ts";
import {
  benchAdminToken,
  coresBusy,
  createBenchDatabase,
  machineCpu,
  machineNote,
  onCleanup,
  parseBenchArgs,
  postgresVersion,
  runBench,
} from "./harness.ts";
import { connectRawClient, publishPayload, publishTopic } from "./raw-mqtt.ts";
import { fmt, type Latency, latencyOf, Receipts, serveRpc, spawnRpcKid, summarise } from "./webhook-kit.ts";

const PARTNERS = 5;
const SHOPS = 4;
const DEFAULT_RATE = 200;
const WRITER_CONNECTIONS = 16;

const log = (line: string) => process.stderr.write(`[sse-latency] ${line}\n`);

type Channel = "sse" | "mqtt" | "floor";
const CHANNELS: Channel[] = ["sse", "mqtt", "floor"];

interface ConsumerSpec {
  baseUrl: string;
  mqttPort: number;
  relayPort: number;
  partners: { id: string; credentialId: string; secret: string }[];
}

// ---------------------------------------------------------------- the consumers' process

const consumersMode = async () => {
  const receipts: Record<Channel, Receipts> = {
    sse: new Receipts(),
    mqtt: new Receipts(),
    floor: new Receipts(),
  };
  let sseOpen = 0;
  let sseEnded = 0;
  let cursors = 0;

  /** One SSE client: a GET that never ends, messages split on blank lines. */
  const openStream = (baseUrl: string, secret: string) =>
    new Promise<void>((resolve, reject) => {
      const req = http.get(
        `${baseUrl}/v1/events/stream?after=0`,
        { headers: { authorization: `Bearer ${secret}`, accept: "text/event-stream" } },
        (res) => {
          if (res.statusCode !== 200) {
            reject(new Error(`stream: HTTP ${res.statusCode}`));
            res.resume();
            return;
          }
          res.socket.setNoDelay(true);
          sseOpen++;
          resolve();
          let rest = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            const t = nowMs();
            const messages = (rest + chunk).split("\n\n");
            rest = messages.pop()!;
            for (const message of messages) {
              let data: string | undefined;
              let named = false;
              for (const line of message.split("\n")) {
                if (line.startsWith("data: ")) data = line.slice(6);
                else if (line.startsWith("event: ")) named = true;
              }
              if (named) {
                cursors++;
                continue;
              }
              if (data === undefined) continue;
              const event = JSON.parse(data) as { partner_id: string; seq: number };
              receipts.sse.record(event.partner_id, event.seq, t);
            }
          });
          res.on("end", () => {
            sseOpen--;
            sseEnded++;
            log(`an event stream ended (${sseEnded} so far)`);
          });
        },
      );
      req.on("error", reject);
    });

  const connect = async (spec: ConsumerSpec) => {
    for (const partner of spec.partners) {
      const client = await connectRawClient({
        host: "127.0.0.1",
        port: spec.mqttPort,
        clientId: `sse-bench-${partner.id}-${process.pid}`,
        username: partner.credentialId,
        password: partner.secret,
      });
      client.onPublish = (body, qos) => {
        if (!publishTopic(body).includes("/orders/")) return;
        const t = nowMs();
        const event = JSON.parse(publishPayload(body, qos).toString()) as { partner_id: string; seq: number };
        receipts.mqtt.record(event.partner_id, event.seq, t);
      };
      client.socket.on("error", (error) => log(`subscriber error: ${error.message}`));
      await client.subscribe([`partners/${partner.id}/shops/+/orders/+`], 1);
      await openStream(spec.baseUrl, partner.secret);
    }
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(spec.relayPort, "127.0.0.1", () => resolve());
      socket.setNoDelay(true);
      socket.once("error", reject);
      let rest = "";
      socket.on("data", (chunk: Buffer) => {
        const t = nowMs();
        const lines = (rest + chunk.toString()).split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          const event = JSON.parse(line) as { partner_id: string; seq: number };
          receipts.floor.record(event.partner_id, event.seq, t);
        }
      });
    });
    return { sseOpen };
  };

  serveRpc({}, async (cmd, args) => {
    switch (cmd) {
      case "connect":
        return connect(args as ConsumerSpec);
      case "reset":
        for (const channel of CHANNELS) receipts[channel].reset();
        cursors = 0;
        return null;
      case "latency": {
        const commits = args as Commits;
        return {
          sse: latencyOf(commits, receipts.sse),
          mqtt: latencyOf(commits, receipts.mqtt),
          floor: latencyOf(commits, receipts.floor),
          sseOpen,
          sseEnded,
          cursors,
        };
      }
      default:
        throw new Error(`unknown command ${cmd}`);
    }
  });
};

// ---------------------------------------------------------------- the bench

interface RoundResult {
  round: number;
  writeRate: number;
  behind: number;
  machineCoresBusy: number;
  sse: Latency;
  mqtt: Latency;
  floor: Latency;
  cursors: number;
}

const main = async () => {
  const own = new Set(["--rate"]);
  const args = parseBenchArgs(
    process.argv.slice(2).filter((a, i, all) => !own.has(a) && !own.has(all[i - 1]!)),
  );
  const { values } = parseArgs({
    options: { rate: { type: "string", default: String(DEFAULT_RATE) } },
    strict: false,
  });
  const RATE = Number(values.rate);
  if (!Number.isInteger(RATE) || RATE < 1) throw new Error("--rate must be a positive integer");
  const rounds = args.rounds ?? (args.quick ? 1 : 3);
  const seconds = args.seconds ?? (args.quick ? 5 : 15);

  const db = await createBenchDatabase();
  onCleanup(() => db.drop());
  log(`database ${db.name}`);
  const adminToken = benchAdminToken();
  const env = {
    DATABASE_URL: db.url,
    BREWCAST_ADMIN_TOKEN: adminToken,
    LOG_LEVEL: "warn",
    BENCH_WRITER_CONNECTIONS: String(WRITER_CONNECTIONS),
  };
  const brewcast = await spawnKid("brewcast", env, args.serverFlags);
  const baseUrl = `http://127.0.0.1:${brewcast.info.http}`;
  log(`brewcast pid ${brewcast.pid}: http ${brewcast.info.http}, mqtt ${brewcast.info.mqtt}`);
  const partners = await createPartners(baseUrl, adminToken, PARTNERS, SHOPS, "sse");
  await pinNormal(baseUrl, adminToken, partners);
  const relay = await brewcast.call<{ port: number }>("relay");
  const consumers = await spawnRpcKid(fileURLToPath(import.meta.url), "consumers");
  await consumers.call("connect", {
    baseUrl,
    mqttPort: Number(brewcast.info.mqtt),
    relayPort: relay.port,
    partners: partners.map((p) => ({ id: p.id, credentialId: p.credentialId, secret: p.secret })),
  } satisfies ConsumerSpec);
  log(
    `${PARTNERS} MQTT subscribers and ${PARTNERS} event streams connected (consumers pid ${consumers.pid})`,
  );

  const write = (s: number) =>
    brewcast.call<Commits>("write", {
      rate: RATE,
      seconds: s,
      targets: partners.map((p) => ({ id: p.id, shops: p.shops })),
      connections: WRITER_CONNECTIONS,
      wake: "inproc",
    } satisfies WriteRequest);

  const runRound = async (round: number, s: number): Promise<RoundResult> => {
    const lag = await waitCaughtUp(db.url);
    if (lag > 0) log(`bridge still ${lag} events behind after 60 s`);
    await consumers.call("reset");
    const cpuBefore = machineCpu();
    const commits = await write(s);
    await sleep(1_000); // the last events' receipts
    const machineCoresBusy = coresBusy(cpuBefore, machineCpu());
    const r = await consumers.call<{ sse: Latency; mqtt: Latency; floor: Latency; cursors: number }>(
      "latency",
      commits,
    );
    const writeRate = commits.t.length / commits.seconds;
    log(
      `round ${round}: SSE p50 ${fmt(r.sse.p50)} p99 ${fmt(r.sse.p99)} ms (${r.sse.received}/${r.sse.expected}); MQTT p50 ${fmt(r.mqtt.p50)} p99 ${fmt(r.mqtt.p99)} ms (${r.mqtt.received}/${r.mqtt.expected}); floor p50 ${fmt(r.floor.p50)} p99 ${fmt(r.floor.p99)} ms; wrote ${writeRate.toFixed(0)}/s (behind ${commits.behind}); ${fmt(machineCoresBusy)} cores busy`,
    );
    return { round, writeRate, behind: commits.behind, machineCoresBusy, ...r };
  };

  log("warm-up");
  await runRound(0, 2);
  const results: RoundResult[] = [];
  for (let r = 1; r <= rounds; r++) results.push(await runRound(r, seconds));

  const by = (channel: Channel) => summarise(results.map((r) => r[channel]));
  const ratio = (key: "p50" | "p90" | "p99", a: Channel, b: Channel) =>
    median(results.map((r) => r[a][key] / r[b][key]));
  const machine = machineNote(await postgresVersion(db.url));
  const lines = [
    "",
    `sse-latency — ${new Date().toISOString()}`,
    `machine: ${machine.cpus} × ${machine.cpuModel}, load ${machine.loadavg1} at end, node ${machine.node}, ${machine.postgres}`,
    `params: ${RATE} events/s, ${PARTNERS} partners × ${SHOPS} shops, per partner 1 SSE client + 1 MQTT QoS 1 subscriber (one process), writer in brewcast's process, ${rounds} rounds × ${seconds} s`,
    "",
    "round  channel   p50 ms   p90 ms   p99 ms    max ms  received/expected  wrote/s  cores busy",
  ];
  for (const r of results) {
    for (const channel of CHANNELS) {
      const l = r[channel];
      lines.push(
        `${String(r.round).padStart(5)}  ${channel.padEnd(7)} ${fmt(l.p50).padStart(8)} ${fmt(l.p90).padStart(8)} ${fmt(l.p99).padStart(8)} ${fmt(l.max, 1).padStart(9)} ${`${l.received}/${l.expected}`.padStart(18)} ${fmt(r.writeRate, 0).padStart(8)} ${fmt(r.machineCoresBusy).padStart(11)}`,
      );
    }
  }
  lines.push("", "median    p50 ms   p90 ms   p99 ms    max ms");
  for (const channel of CHANNELS) {
    const s = by(channel);
    lines.push(
      `${channel.padEnd(8)} ${fmt(s.p50).padStart(8)} ${fmt(s.p90).padStart(8)} ${fmt(s.p99).padStart(8)} ${fmt(s.max, 1).padStart(9)}`,
    );
  }
  const ratios = [
    { label: "SSE p50 / MQTT p50", value: ratio("p50", "sse", "mqtt") },
    { label: "SSE p90 / MQTT p90", value: ratio("p90", "sse", "mqtt") },
    { label: "SSE p99 / MQTT p99", value: ratio("p99", "sse", "mqtt") },
    { label: "SSE p50 / floor p50", value: ratio("p50", "sse", "floor") },
    { label: "MQTT p50 / floor p50", value: ratio("p50", "mqtt", "floor") },
  ];
  lines.push("", "ratio (median of per-round ratios)");
  for (const r of ratios) lines.push(`${r.label.padEnd(28)} ${fmt(r.value).padStart(7)}`);
  process.stdout.write(`${lines.join("\n")}\n\n`);
  process.stdout.write(
    `BENCH_JSON ${JSON.stringify({
      bench: "sse-latency",
      date: new Date().toISOString(),
      machine,
      params: { rate: RATE, partners: PARTNERS, shops: SHOPS, rounds, seconds },
      summary: { sse: by("sse"), mqtt: by("mqtt"), floor: by("floor") },
      rounds: results,
      ratios,
    })}\n`,
  );
};

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  if (process.argv.includes("--kid")) {
    consumersMode().catch((error) => {
      log(`consumers failed: ${(error as Error).stack ?? error}`);
      process.exit(1);
    });
  } else {
    runBench(main);
  }
}
