/**
 * Commit → receipt latency of the event stream (issue 18): Server-Sent Events
 * (`GET /v1/events/stream`) beside MQTT QoS 1, both at once in the same run,
 * and the machine's floor (a bare socket at commit, bench/lib/relay.ts).
 *
 *   npm run bench:sse-latency                 # 3 rounds × 15 s, 200 events/s over 5 partners (~1.5 min)
 *   npm run bench:sse-latency -- --quick      # 1 round × 5 s
 *   npm run bench:sse-latency -- --rate 500 --rounds 2 --seconds 20
 *
 * - brewcast (role all) runs in its own process with the writer in it
 *   (bench/children/brewcast.ts): `createOrderStore().create()` paced at the
 *   rate on 16 connections, each committed event handed to what the API's
 *   `onCommitted` is (`internalsOf(running).committed`): the bridge takes it
 *   in-process and the open event streams are woken.
 * - The consumers run in one process of their own
 *   (bench/children/sse-consumers.ts): per partner one raw-socket MQTT 3.1.1 subscriber at QoS 1
 *   (bench/raw-mqtt.ts) on `partners/{p}/shops/+/orders/+`, and one SSE
 *   client (plain node:http, `Authorization: Bearer`, text/event-stream
 *   parsed by hand; `event: cursor` messages ignored), plus the floor's reader.
 * - Latency = the consumer's receipt time (the chunk holding the event
 *   arrived) − the time the writer's round trip returned, both
 *   `process.hrtime` (CLOCK_MONOTONIC, shared by every process). Every
 *   channel is measured on the same commits at the same moments, so no ABBA
 *   is needed; each round is reported.
 */
import type { ConsumerSpec } from "./children/sse-consumers.ts";
import { waitCaughtUp } from "./lib/admin.ts";
import { spawnKid } from "./lib/children.ts";
import { machineLine, printBenchJson } from "./lib/comparison.ts";
import { postgresVersion } from "./lib/database.ts";
import { coresBusy, machineCpu, machineNote, sleep } from "./lib/machine.ts";
import { summarise } from "./lib/receipts.ts";
import { startBrewcastRig, writeRequest } from "./lib/rig.ts";
import { parseBenchArgs, positiveInt, runBench } from "./lib/run.ts";
import { fmt, median } from "./lib/stats.ts";
import type { Commits } from "./lib/writer.ts";
import type { Latency } from "./webhook-kit.ts";

const PARTNERS = 5;
const SHOPS = 4;
const DEFAULT_RATE = 200;
const WRITER_CONNECTIONS = 16;

const log = (line: string) => process.stderr.write(`[sse-latency] ${line}\n`);

type Channel = "sse" | "mqtt" | "floor";
const CHANNELS: Channel[] = ["sse", "mqtt", "floor"];

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
  const args = parseBenchArgs(undefined, { rate: { type: "string", default: String(DEFAULT_RATE) } });
  const RATE = positiveInt(args.own.rate, "rate");
  const rounds = args.rounds ?? (args.quick ? 1 : 3);
  const seconds = args.seconds ?? (args.quick ? 5 : 15);

  const { db, brewcast, baseUrl, partners } = await startBrewcastRig({
    tag: "sse",
    partners: PARTNERS,
    shops: SHOPS,
    serverFlags: args.serverFlags,
    writerConnections: WRITER_CONNECTIONS,
    log,
  });
  const relay = await brewcast.call<{ port: number }>("relay");
  const consumers = await spawnKid("sse-consumers");
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
    brewcast.call<Commits>(
      "write",
      writeRequest(partners, { rate: RATE, seconds: s, connections: WRITER_CONNECTIONS, wake: "inproc" }),
    );

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
    machineLine(machine),
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
  printBenchJson("sse-latency", machine, {
    params: { rate: RATE, partners: PARTNERS, shops: SHOPS, rounds, seconds },
    summary: { sse: by("sse"), mqtt: by("mqtt"), floor: by("floor") },
    rounds: results,
    ratios,
  });
};

runBench(main);
