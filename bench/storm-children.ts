/**
 * The two child programs of bench/reconnect-storm.ts, each in its own process so that neither
 * shares an event loop with the server it drives or stands in for:
 *
 * - `--child load`: the consumers. Told `{ url, consumers, pages, limit }` over IPC, it opens
 *   one connection per consumer and has every consumer read its `pages` pages of
 *   `GET /v1/events?after=&limit=` from its own position, all at once, one page after the
 *   other; a 429 waits its Retry-After (plus jitter, as the SDK does) and asks again. Answers
 *   with the time until the last consumer caught up and each page's latency.
 * - `--child pages`: the peer, a bare node:http server handing out the same pages from memory
 *   (each partner's events as one buffer, a page a slice of it), authenticated by the same
 *   secrets; and `/healthz`.
 *
 *   node --import tsx bench/storm-children.ts --child load|pages
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { Pool } from "undici";
import { exitWhenStopped } from "./harness.ts";

export interface StormConsumer {
  secret: string;
  /** The position it reads after. */
  from: number;
}

export interface StormOrder {
  url: string;
  consumers: StormConsumer[];
  pages: number;
  limit: number;
}

export interface StormResult {
  /** From the first request to the last consumer's last page. */
  ms: number;
  pages: number;
  bytes: number;
  /** Each successful page's latency, ms (sorted). */
  latencies: number[];
  /** 429 answers (each waited out and asked again). */
  limited: number;
  /** Other failures (each retried after 100 ms + jitter). */
  failed: number;
  /** A sample of pages was parsed: the first seq each held was the one expected. */
  checked: number;
}

/** The partners' logs, for the bare server (BENCH_STORM_PAGES names a JSON file of these). */
export interface StormLog {
  secrets: string[];
  epoch: string;
  head: number;
  /** Event seq i + 1 is `events[i]`, JSON text. */
  events: string[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const runStorm = async (order: StormOrder): Promise<StormResult> => {
  const pool = new Pool(order.url, { connections: order.consumers.length, pipelining: 1 });
  const latencies: number[] = [];
  let bytes = 0;
  let limited = 0;
  let failed = 0;
  let checked = 0;
  const readPage = async (consumer: StormConsumer, after: number, check: boolean): Promise<void> => {
    for (;;) {
      const started = performance.now();
      try {
        const { statusCode, headers, body } = await pool.request({
          method: "GET",
          path: `/v1/events?after=${after}&limit=${order.limit}`,
          headers: { authorization: `Bearer ${consumer.secret}`, accept: "application/json" },
        });
        if (statusCode === 200) {
          const text = check ? await body.text() : undefined;
          if (text === undefined) for await (const chunk of body) bytes += (chunk as Buffer).length;
          else {
            bytes += Buffer.byteLength(text);
            const first = (JSON.parse(text) as { events: { seq: number }[] }).events[0];
            if (first?.seq !== after + 1) throw new Error(`page after ${after} starts at ${first?.seq}`);
            checked++;
          }
          latencies.push(performance.now() - started);
          return;
        }
        await body.dump();
        if (statusCode === 429) {
          limited++;
          const seconds = Number(headers["retry-after"] ?? 1);
          await sleep((Number.isFinite(seconds) ? seconds : 1) * 1_000 * (1 + Math.random()));
          continue;
        }
        failed++;
      } catch (error) {
        if ((error as Error).message.startsWith("page after")) throw error;
        failed++;
      }
      await sleep(100 + Math.random() * 100);
    }
  };
  const started = performance.now();
  await Promise.all(
    order.consumers.map(async (consumer, index) => {
      for (let page = 0; page < order.pages; page++) {
        // One page in 50 is parsed to check it; the rest are read and counted, not parsed.
        await readPage(consumer, consumer.from + page * order.limit, (index + page) % 50 === 0);
      }
    }),
  );
  const ms = performance.now() - started;
  await pool.close();
  latencies.sort((a, b) => a - b);
  return { ms, pages: latencies.length, bytes, latencies, limited, failed, checked };
};

const serveLoad = () => {
  exitWhenStopped(async () => {});
  process.on("message", (message) => {
    runStorm(message as StormOrder).then(
      (result) => process.send?.({ result }),
      (error) => process.send?.({ error: (error as Error).stack ?? String(error) }),
    );
  });
  process.send?.({ ready: true });
};

const servePages = async () => {
  const file = process.env.BENCH_STORM_PAGES;
  if (!file) throw new Error("BENCH_STORM_PAGES is not set");
  const logs = JSON.parse(readFileSync(file, "utf8")) as StormLog[];
  // Each partner's events as one buffer, "e1,e2,…", and where each event starts in it.
  const partners = logs.map((log) => {
    const parts = log.events.map((event) => Buffer.from(event));
    const starts: number[] = [];
    let at = 0;
    for (const part of parts) {
      starts.push(at);
      at += part.length + 1;
    }
    starts.push(at);
    return { log, all: Buffer.from(log.events.join(",")), starts };
  });
  const bySecret = new Map<string, (typeof partners)[number]>();
  for (const partner of partners)
    for (const secret of partner.log.secrets) bySecret.set(`Bearer ${secret}`, partner);
  const healthz = Buffer.from('{"status":"ok"}');
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://bare");
    if (url.pathname === "/healthz") {
      res.writeHead(200, {
        "content-type": "application/json; charset=utf-8",
        "content-length": healthz.length,
      });
      res.end(healthz);
      return;
    }
    const partner = bySecret.get(req.headers.authorization ?? "");
    if (url.pathname !== "/v1/events" || !partner) {
      res.writeHead(partner ? 404 : 401).end();
      return;
    }
    const { head, epoch } = partner.log;
    const after = Math.min(Number(url.searchParams.get("after") ?? 0), head);
    const end = Math.min(after + Number(url.searchParams.get("limit") ?? 100), head);
    const slice =
      end > after ? partner.all.subarray(partner.starts[after], partner.starts[end]! - 1) : Buffer.alloc(0);
    const body = Buffer.concat([
      Buffer.from('{"events":['),
      slice,
      Buffer.from(`],"head_seq":${head},"epoch":"${epoch}"}`),
    ]);
    res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": body.length });
    res.end(body);
  });
  server.maxConnections = 100_000;
  // The same accept queue as brewcast's (src/app/http.ts): a storm's connects all at once.
  await new Promise<void>((resolve) =>
    server.listen({ port: 0, host: "127.0.0.1", backlog: 4_096 }, resolve),
  );
  exitWhenStopped(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  process.send?.({ ready: true, port: (server.address() as AddressInfo).port });
};

const { values } = parseArgs({ options: { child: { type: "string" } }, strict: false });
if (values.child === "load") serveLoad();
else if (values.child === "pages") {
  servePages().catch((error) => {
    process.stderr.write(`pages server failed: ${(error as Error).stack}\n`);
    process.exit(1);
  });
}
