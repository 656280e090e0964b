/**
 * Load generators: `measureHttp` drives an HTTP target with autocannon; `measureLoop` drives any
 * async operation (a SQL statement, a client call) with N workers.
 */
import { createRequire } from "node:module";
import type { Measurement } from "./comparison.ts";
import { round } from "./stats.ts";

const log = (line: string) => process.stderr.write(`${line}\n`);

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
  latency: { p50: number; p90: number; p99: number; max: number };
}

export interface HttpRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
}

type AutocannonFn = (
  options: Record<string, unknown>,
  callback: (error: Error | null, result: AutocannonResult) => void,
) => unknown;

// autocannon ships no types; this is the part of its API the harness uses.
const autocannon = createRequire(import.meta.url)("autocannon") as AutocannonFn;

/**
 * Drives `url` with autocannon: `connections` keep-alive connections, one
 * request in flight each, for `seconds`. `request()` is called before every
 * request (random cursors, credentials).
 */
export const measureHttp = async (options: {
  url: string;
  connections: number;
  seconds: number;
  request: () => HttpRequest;
}): Promise<Measurement> => {
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    autocannon(
      {
        url: options.url,
        connections: options.connections,
        pipelining: 1,
        duration: options.seconds,
        timeout: 30,
        requests: [{ setupRequest: (req: HttpRequest) => ({ ...req, ...options.request() }) }],
      },
      (error, res) => (error ? reject(error) : resolve(res)),
    );
  });
  let ok = 0;
  for (const [status, stat] of Object.entries(result.statusCodeStats ?? {})) {
    if (status.startsWith("2")) ok += Number(stat.count);
  }
  const failed = result.errors + result.non2xx;
  return {
    rate: ok / result.duration,
    unit: "req/s",
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
    },
    ok,
    failed,
    seconds: result.duration,
  };
};

/**
 * Runs `op(worker)` in a loop on `concurrency` workers for `seconds` and
 * measures each call. A call that throws counts as failed (the first error
 * is logged).
 */
export const measureLoop = async (options: {
  concurrency: number;
  seconds: number;
  op: (worker: number) => Promise<void>;
}): Promise<Measurement> => {
  const latencies: number[] = [];
  let failed = 0;
  let firstError: unknown;
  const start = performance.now();
  const deadline = start + options.seconds * 1000;
  const worker = async (index: number) => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        await options.op(index);
        latencies.push(performance.now() - t0);
      } catch (error) {
        failed++;
        firstError ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, i) => worker(i)));
  const seconds = (performance.now() - start) / 1000;
  if (firstError) log(`measureLoop: ${failed} failed, first: ${(firstError as Error).message}`);
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  return {
    rate: latencies.length / seconds,
    unit: "ops/s",
    latencyMs: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) },
    ok: latencies.length,
    failed,
    seconds,
  };
};
