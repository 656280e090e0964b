/**
 * Webhook delivery (issue 18): throughput and commit → receipt latency to a
 * fast local receiver, against a bare undici loop POSTing the same events to
 * the same receiver (the floor), in the same run. Goal: brewcast ÷ floor ≥ 0.8.
 *
 *   npm run bench:webhooks                  # 2 rounds: backlog 1,000 events; 15 s at 200 events/s (~3 min)
 *   npm run bench:webhooks -- --quick       # 1 round: backlog up to 1,000; 5 s
 *   npm run bench:webhooks -- --rate 500 --backlog-seconds 10 --rounds 3
 *
 * Processes: brewcast (role all) with `BREWCAST_WEBHOOK_ALLOW_NETS=127.0.0.0/8`
 * and the writer in it (bench/bridge-kit.ts); the receiver
 * (bench/webhook-kit.ts: node:http on 127.0.0.1, 204 at once, the
 * verification challenge echoed, every 50th request's signature verified
 * with standardwebhooks); the throughput floor (its own process).
 *
 * Setup through the API, as a partner and an operator would: per partner
 * `POST /v1/webhooks` with its backend secret (the receiver echoes the
 * challenge), then `POST /admin/v1/webhooks/{id}/confirm` with the URL.
 *
 * (a) Throughput, rounds ABBA: one partner's endpoint, a backlog of the
 *     events seeded flat out for `--backlog-seconds` (1,000 at most);
 *     brewcast: `POST /v1/webhooks/{id}/replay {from_seq}` (the last 1,000 at most), rate = events
 *     / (replay request → last receipt); floor: the same event bodies (read
 *     back with GET /v1/events, JSON as the API gives it), POSTed by a bare
 *     undici loop (keep-alive Agent, one request in flight, headers and
 *     signature as brewcast's `webhookHeaders` makes them), same measure.
 * (b) Latency at a steady rate over 10 partners, one endpoint each: the
 *     writer commits; brewcast delivers; and, at the same moments, the
 *     writer's own process POSTs each committed event with undici
 *     (bridge-kit's `BENCH_HTTP_FLOOR_URL`: one request in flight per
 *     partner, as one endpoint each). Latency = the receiver's receipt (body
 *     read) − the writer's round trip returning (CLOCK_MONOTONIC). The two
 *     take turns at going first (odd seqs brewcast, even seqs the floor: see
 *     bench/children/brewcast.ts); each round also reports the two halves.
 */
import { parseArgs } from "node:util";
import { type BenchPartner, benchAdminToken, createPartners, pinNormal, waitCaughtUp } from "./lib/admin.ts";
import { spawnKid } from "./lib/children.ts";
import { createBenchDatabase, postgresVersion } from "./lib/database.ts";
import { coresBusy, machineCpu, machineNote, nowMs, sleep } from "./lib/machine.ts";
import { onCleanup, parseBenchArgs, runBench } from "./lib/run.ts";
import { median } from "./lib/stats.ts";
import type { Commits, WriteRequest } from "./lib/writer.ts";
import { fmt, type Latency, spawnWebhookKid, summarise } from "./webhook-kit.ts";

const PARTNERS = 10;
const SHOPS = 4;
const DEFAULT_RATE = 200;
const WRITER_CONNECTIONS = 16;
const MAX_BACKLOG = 1_000;
/** No new receipt for this long: the delivery has stalled (or does not exist). */
const STALL_MS = 10_000;

const log = (line: string) => process.stderr.write(`[webhooks] ${line}\n`);

interface Endpoint {
  partner: BenchPartner;
  id: string;
  url: string;
  bucket: string;
}

interface Counted {
  count: number;
  distinct: number;
  firstAt: number;
  lastAt: number;
}

const api = async (
  baseUrl: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> => {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
};

const main = async () => {
  const own = new Set(["--rate", "--backlog-seconds"]);
  const args = parseBenchArgs(
    process.argv.slice(2).filter((a, i, all) => !own.has(a) && !own.has(all[i - 1]!)),
  );
  const { values } = parseArgs({
    options: {
      rate: { type: "string", default: String(DEFAULT_RATE) },
      "backlog-seconds": { type: "string" },
    },
    strict: false,
  });
  const RATE = Number(values.rate);
  if (!Number.isInteger(RATE) || RATE < 1) throw new Error("--rate must be a positive integer");
  const rounds = args.rounds ?? (args.quick ? 1 : 2);
  const seconds = args.seconds ?? (args.quick ? 5 : 15);
  const backlogSeconds = Number(values["backlog-seconds"] ?? (args.quick ? 3 : 5));

  const db = await createBenchDatabase();
  onCleanup(() => db.drop());
  log(`database ${db.name}`);
  const receiver = await spawnWebhookKid("receiver");
  const receiverUrl = `http://127.0.0.1:${receiver.info.port}`;
  const adminToken = benchAdminToken();
  const env = {
    DATABASE_URL: db.url,
    BREWCAST_ADMIN_TOKEN: adminToken,
    LOG_LEVEL: "warn",
    BENCH_WRITER_CONNECTIONS: String(WRITER_CONNECTIONS),
    BREWCAST_WEBHOOK_ALLOW_NETS: "127.0.0.0/8",
    BENCH_HTTP_FLOOR_URL: `${receiverUrl}/floor`,
  };
  const brewcast = await spawnKid("brewcast", env, args.serverFlags);
  const baseUrl = `http://127.0.0.1:${brewcast.info.http}`;
  log(
    `brewcast pid ${brewcast.pid}: http ${brewcast.info.http}; receiver pid ${receiver.pid} at ${receiverUrl}`,
  );
  const partners = await createPartners(baseUrl, adminToken, PARTNERS, SHOPS, "wh");
  const [thrPartner] = await createPartners(baseUrl, adminToken, 1, SHOPS, "whthr");
  await pinNormal(baseUrl, adminToken, [...partners, thrPartner!]);
  const floor = await spawnWebhookKid("floor");

  // ------------------------------------------------ endpoints, through the API
  const setUp = async (partner: BenchPartner): Promise<Endpoint> => {
    const bucket = `/hook/${partner.id}`;
    const url = `${receiverUrl}${bucket}`;
    const created = await api(baseUrl, partner.secret, "POST", "/v1/webhooks", {
      url,
      description: "bench receiver",
    });
    if (created.status !== 201)
      throw new Error(`POST /v1/webhooks: ${created.status} ${JSON.stringify(created.json)}`);
    const id = created.json.id as string;
    await receiver.call("secret", { bucket, secret: created.json.secret as string });
    // The verification runs in the background after the create; ask again if it has not passed.
    let verified = false;
    for (let i = 0; i < 50 && !verified; i++) {
      const got = await api(baseUrl, partner.secret, "GET", `/v1/webhooks/${id}`);
      verified = got.json.verified_at !== null && got.json.verified_at !== undefined;
      if (!verified) await sleep(100);
    }
    if (!verified) {
      const again = await api(baseUrl, partner.secret, "POST", `/v1/webhooks/${id}/verify`);
      log(
        `endpoint ${id}: verified on asking again? ${again.status} ${JSON.stringify(again.json).slice(0, 200)}`,
      );
    }
    const confirmed = await api(baseUrl, adminToken, "POST", `/admin/v1/webhooks/${id}/confirm`, { url });
    if (confirmed.status !== 200)
      throw new Error(`confirm ${id}: ${confirmed.status} ${JSON.stringify(confirmed.json)}`);
    return { partner, id, url, bucket };
  };
  const endpoints: Endpoint[] = [];
  for (const p of partners) endpoints.push(await setUp(p));
  const thr = await setUp(thrPartner!);
  const status = await api(baseUrl, thrPartner!.secret, "GET", `/v1/webhooks/${thr.id}`);
  log(
    `${endpoints.length + 1} endpoints created, verified and confirmed (status ${status.json.status}, position ${status.json.position})`,
  );

  const write = (targets: BenchPartner[], rate: number, s: number) =>
    brewcast.call<Commits>("write", {
      rate,
      seconds: s,
      targets: targets.map((p) => ({ id: p.id, shops: p.shops })),
      connections: WRITER_CONNECTIONS,
      wake: "inproc",
    } satisfies WriteRequest);

  /** Polls the receiver until `buckets` hold `want` distinct events or nothing new came for STALL_MS. */
  const waitFor = async (buckets: string[], want: number): Promise<Counted> => {
    let last: Counted = await receiver.call<Counted>("count", buckets);
    let progressAt = nowMs();
    while (last.distinct < want) {
      await sleep(100);
      const now = await receiver.call<Counted>("count", buckets);
      if (now.count !== last.count) progressAt = nowMs();
      last = now;
      if (nowMs() - progressAt > STALL_MS) break;
    }
    return last;
  };

  // ------------------------------------------------ (a) throughput: a backlog
  log(`seeding the backlog: ${backlogSeconds} s flat out on ${thrPartner!.id}`);
  const seeded = await write([thrPartner!], 0, backlogSeconds);
  const headSeq = Math.max(...seeded.seq);
  const backlog = Math.min(headSeq, MAX_BACKLOG);
  const bodies: string[] = [];
  // The last `backlog` events: brewcast replays exactly these (from_seq), the floor POSTs them.
  const fromSeq = headSeq - backlog + 1;
  for (let after = fromSeq - 1; bodies.length < backlog; ) {
    const page = await api(baseUrl, thrPartner!.secret, "GET", `/v1/events?after=${after}&limit=1000`);
    const events = page.json.events as { seq: number }[];
    if (events.length === 0) break;
    for (const event of events) if (bodies.length < backlog) bodies.push(JSON.stringify(event));
    after = events.at(-1)!.seq;
  }
  const meanBytes = bodies.reduce((a, b) => a + Buffer.byteLength(b), 0) / bodies.length;
  log(`backlog: ${backlog} events (seq ${fromSeq}–${headSeq}), ${meanBytes.toFixed(0)} bytes a body`);
  const live = await waitFor([thr.bucket], headSeq);
  log(`live delivery of the seeded events: ${live.distinct}/${headSeq} received`);

  interface ThroughputRound {
    round: number;
    case: "brewcast" | "floor";
    events: number;
    eventsPerSecond: number;
    /** Between the first and the last receipt (no start-up). */
    steadyPerSecond: number;
    ms: number;
  }
  const throughput: ThroughputRound[] = [];
  const runThroughput = async (round: number, which: "brewcast" | "floor") => {
    const bucket = which === "brewcast" ? thr.bucket : `/floor-thr/${thrPartner!.id}`;
    await receiver.call("reset", [bucket]);
    const t0 = nowMs();
    if (which === "brewcast") {
      const replay = await api(baseUrl, thrPartner!.secret, "POST", `/v1/webhooks/${thr.id}/replay`, {
        from_seq: fromSeq,
      });
      if (replay.status >= 300) throw new Error(`replay: ${replay.status} ${JSON.stringify(replay.json)}`);
    } else {
      await floor.call("post", { url: `${receiverUrl}${bucket}`, bodies });
    }
    const got = await waitFor([bucket], backlog);
    const events = Math.min(got.distinct, backlog);
    const ms = got.lastAt - t0;
    const r: ThroughputRound = {
      round,
      case: which,
      events,
      eventsPerSecond: events > 0 ? events / (ms / 1000) : 0,
      steadyPerSecond: events > 1 ? (events - 1) / ((got.lastAt - got.firstAt) / 1000) : 0,
      ms: events > 0 ? ms : Number.NaN,
    };
    log(
      `throughput round ${round} ${which}: ${events} events in ${fmt(r.ms, 0)} ms = ${fmt(r.eventsPerSecond, 0)}/s (first→last ${fmt(r.steadyPerSecond, 0)}/s)`,
    );
    throughput.push(r);
  };
  for (let r = 1; r <= rounds; r++) {
    const order: ("brewcast" | "floor")[] = r % 2 === 1 ? ["brewcast", "floor"] : ["floor", "brewcast"];
    for (const which of order) await runThroughput(r, which);
  }

  // ------------------------------------------------ (b) latency at a steady rate
  interface LatencyRound {
    round: number;
    writeRate: number;
    behind: number;
    machineCoresBusy: number;
    brewcast: Latency;
    floor: Latency;
    /** The same, over the events where brewcast was handed the commit first (odd seq), and the floor (even). */
    halves: Record<"brewcastFirst" | "floorFirst", { brewcast: Latency; floor: Latency }>;
  }
  const hookBuckets = endpoints.map((e) => e.bucket);
  const floorBuckets = partners.map((p) => `/floor/${p.id}`);
  const latencyRounds: LatencyRound[] = [];
  const runLatency = async (round: number, s: number) => {
    await waitCaughtUp(db.url);
    await receiver.call("reset", [...hookBuckets, ...floorBuckets]);
    const cpuBefore = machineCpu();
    const commits = await write(partners, RATE, s);
    await waitFor(floorBuckets, commits.t.length);
    await waitFor(hookBuckets, commits.t.length);
    const machineCoresBusy = coresBusy(cpuBefore, machineCpu());
    const brewcastL = await receiver.call<Latency>("latency", { buckets: hookBuckets, commits });
    const floorL = await receiver.call<Latency>("latency", { buckets: floorBuckets, commits });
    const half = async (odd: 0 | 1) => {
      const keep = commits.seq.map((seq, i) => (seq % 2 === odd ? i : -1)).filter((i) => i >= 0);
      const part: Commits = {
        ...commits,
        p: keep.map((i) => commits.p[i]!),
        seq: keep.map((i) => commits.seq[i]!),
        t: keep.map((i) => commits.t[i]!),
      };
      return {
        brewcast: await receiver.call<Latency>("latency", { buckets: hookBuckets, commits: part }),
        floor: await receiver.call<Latency>("latency", { buckets: floorBuckets, commits: part }),
      };
    };
    const halves = { brewcastFirst: await half(1), floorFirst: await half(0) };
    const r: LatencyRound = {
      round,
      writeRate: commits.t.length / commits.seconds,
      behind: commits.behind,
      machineCoresBusy,
      brewcast: brewcastL,
      floor: floorL,
      halves,
    };
    log(
      `latency round ${round}: brewcast p50 ${fmt(brewcastL.p50)} p99 ${fmt(brewcastL.p99)} ms (${brewcastL.received}/${brewcastL.expected}, ${brewcastL.repeats} repeats); floor p50 ${fmt(floorL.p50)} p99 ${fmt(floorL.p99)} ms (${floorL.received}/${floorL.expected}); wrote ${r.writeRate.toFixed(0)}/s (behind ${commits.behind}); ${fmt(machineCoresBusy)} cores busy`,
    );
    log(
      `  halves: brewcast first: brewcast p50 ${fmt(halves.brewcastFirst.brewcast.p50)}, floor ${fmt(halves.brewcastFirst.floor.p50)} ms; floor first: brewcast p50 ${fmt(halves.floorFirst.brewcast.p50)}, floor ${fmt(halves.floorFirst.floor.p50)} ms`,
    );
    if (round > 0) latencyRounds.push(r);
  };
  log("latency warm-up");
  await runLatency(0, 2);
  for (let r = 1; r <= rounds; r++) await runLatency(r, seconds);

  const stats = await receiver.call<Record<string, number>>("stats");
  // brewcast's own view of its requests (the attempts history, last 100, whole ms): how much of
  // an event's time in the worker is the POST itself, the rest being its reads and writes.
  const attempts = await api(baseUrl, thrPartner!.secret, "GET", `/v1/webhooks/${thr.id}/attempts`);
  const postMs = median(
    (attempts.json.attempts as { kind: string; latency_ms: number }[])
      .filter((a) => a.kind === "delivery")
      .map((a) => a.latency_ms),
  );
  const finalState = await Promise.all(
    [...endpoints, thr].map(async (e) => {
      const got = await api(baseUrl, e.partner.secret, "GET", `/v1/webhooks/${e.id}`);
      return { id: e.id, status: got.json.status, position: got.json.position };
    }),
  );

  // ------------------------------------------------ the report
  const rateOf = (which: "brewcast" | "floor") => throughput.filter((t) => t.case === which);
  const perRoundThroughputRatio = median(
    Array.from({ length: rounds }, (_, i) => {
      const b = throughput.find((t) => t.round === i + 1 && t.case === "brewcast")!;
      const f = throughput.find((t) => t.round === i + 1 && t.case === "floor")!;
      return b.eventsPerSecond / f.eventsPerSecond;
    }),
  );
  const latencyRatio = (key: "p50" | "p90" | "p99") =>
    median(latencyRounds.map((r) => r.floor[key] / r.brewcast[key]));
  const bL = summarise(latencyRounds.map((r) => r.brewcast));
  const fL = summarise(latencyRounds.map((r) => r.floor));
  const delivered = rateOf("brewcast").some((t) => t.events > 0) || bL.received > 0;
  const machine = machineNote(await postgresVersion(db.url));
  const lines = [
    "",
    `webhook-delivery — ${new Date().toISOString()}`,
    `machine: ${machine.cpus} × ${machine.cpuModel}, load ${machine.loadavg1} at end, node ${machine.node}, ${machine.postgres}`,
    `params: backlog ${backlog} events (${meanBytes.toFixed(0)} B a body), ${RATE} events/s over ${PARTNERS} partners × ${SHOPS} shops (one endpoint each), ${rounds} rounds × ${seconds} s`,
    delivered ? "" : "NOTE: brewcast delivered nothing: no webhook delivery loop in this build?",
    "",
    "(a) throughput       round  events   ms (start→last)  events/s  first→last/s",
  ];
  for (const t of throughput)
    lines.push(
      `${t.case.padEnd(20)} ${String(t.round).padStart(5)} ${String(t.events).padStart(7)} ${fmt(t.ms, 0).padStart(16)} ${fmt(t.eventsPerSecond, 0).padStart(9)} ${fmt(t.steadyPerSecond, 0).padStart(13)}`,
    );
  lines.push(
    "",
    "(b) latency   round   p50 ms   p90 ms   p99 ms    max ms  received/expected  wrote/s  cores busy",
  );
  for (const r of latencyRounds)
    for (const which of ["brewcast", "floor"] as const) {
      const l = r[which];
      lines.push(
        `${which.padEnd(12)} ${String(r.round).padStart(6)} ${fmt(l.p50).padStart(8)} ${fmt(l.p90).padStart(8)} ${fmt(l.p99).padStart(8)} ${fmt(l.max, 1).padStart(9)} ${`${l.received}/${l.expected}`.padStart(18)} ${fmt(r.writeRate, 0).padStart(8)} ${fmt(r.machineCoresBusy).padStart(11)}`,
      );
    }
  lines.push("", "(b) by who went first   round  brewcast p50 / p99 ms   floor p50 / p99 ms");
  for (const r of latencyRounds)
    for (const [label, h] of [
      ["brewcast first (odd)", r.halves.brewcastFirst],
      ["floor first (even)", r.halves.floorFirst],
    ] as const)
      lines.push(
        `${label.padEnd(22)} ${String(r.round).padStart(6)} ${`${fmt(h.brewcast.p50)} / ${fmt(h.brewcast.p99)}`.padStart(21)} ${`${fmt(h.floor.p50)} / ${fmt(h.floor.p99)}`.padStart(20)}`,
      );
  const ratios = [
    { label: "throughput brewcast / floor", value: perRoundThroughputRatio, goal: 0.8 },
    { label: "latency floor p50 / brewcast p50", value: latencyRatio("p50"), goal: 0.8 },
    { label: "latency floor p90 / brewcast p90", value: latencyRatio("p90") },
    { label: "latency floor p99 / brewcast p99", value: latencyRatio("p99") },
  ].map((r) => ({ ...r, met: r.goal === undefined ? null : Number.isFinite(r.value) && r.value >= r.goal }));
  lines.push(
    "",
    `medians: throughput brewcast ${fmt(median(rateOf("brewcast").map((t) => t.eventsPerSecond)), 0)}/s, floor ${fmt(median(rateOf("floor").map((t) => t.eventsPerSecond)), 0)}/s; latency brewcast p50 ${fmt(bL.p50)} p99 ${fmt(bL.p99)} ms, floor p50 ${fmt(fL.p50)} p99 ${fmt(fL.p99)} ms`,
    `brewcast's POST as its attempts history records it (throughput endpoint, last 100, median): ${fmt(postMs, 0)} ms; per event in the worker, throughput rounds: ${fmt(1000 / median(rateOf("brewcast").map((t) => t.eventsPerSecond)), 1)} ms (floor: ${fmt(1000 / median(rateOf("floor").map((t) => t.eventsPerSecond)), 1)} ms)`,
    `receiver: ${stats.requests} requests, ${stats.challenges} challenges, ${stats.verified} signatures verified, ${stats.verifyFailed} failed; endpoints at the end: ${finalState.map((e) => `${e.status}@${e.position}`).join(" ")}`,
    "",
    "ratio (median of per-round ratios; ≥ 1 = brewcast as fast as the floor)",
  );
  for (const r of ratios)
    lines.push(
      `${r.label.padEnd(36)} ${fmt(r.value).padStart(7)}  ${r.goal === undefined ? "" : `≥ ${r.goal} ${r.met ? "met" : "MISSED"}`}`,
    );
  process.stdout.write(`${lines.join("\n")}\n\n`);
  process.stdout.write(
    `BENCH_JSON ${JSON.stringify({
      bench: "webhook-delivery",
      date: new Date().toISOString(),
      machine,
      params: {
        rate: RATE,
        partners: PARTNERS,
        shops: SHOPS,
        rounds,
        seconds,
        backlog,
        bodyBytes: meanBytes,
      },
      delivered,
      throughput,
      latency: { rounds: latencyRounds, brewcast: bL, floor: fL },
      receiver: stats,
      brewcastPostMsMedian: postMs,
      endpoints: finalState,
      ratios,
    })}\n`,
  );
};

runBench(main);
