/**
 * Sends one signed webhook request and says how it went. The delivery loop
 * and the verification request both use it; it never retries (the loop
 * decides that) and never throws for a receiver's failure.
 *
 * - The URL goes through the address guard on every send (a pass is kept for
 *   30 s, as a DNS cache would keep it: address-guard.ts; a kept pass is taken
 *   without awaiting, so the request is handed to undici in the caller's own
 *   turn of the event loop, not a few promise hops later); the connection is
 *   made to the address the guard checked (undici's `connect.lookup` answers
 *   with it, so there is no second DNS lookup a rebinding could switch).
 *   Host and TLS SNI stay the URL's host name, so certificates verify as usual.
 * - No redirects: undici's `request` does not follow them, and a 3xx is a failure.
 * - At most `maxResponseBytes` of the answer are read; the rest is discarded.
 * - One deadline covers connecting, sending and reading (`timeoutMs`).
 *
 * Connections are kept alive per (origin, checked address): a new address
 * after re-resolution gets a new connection pool.
 *
 * The delivery channel (on the delivery core) calls it per event with
 * `store.target(id)` (url and the secrets to sign with) and
 * `{ id: buildWebhookMessageId(partner, seq), timestamp: new Date(), body: <event JSON> }`,
 * records each outcome with `store.recordAttempt`, moves the position with
 * `store.commitPosition` (compare and set against a replay), and on 410 calls
 * `store.setStatus(id, "delivery", "disabled", …)`.
 */
import type { LookupFunction } from "node:net";
import { Agent, request } from "undici";
import { type AddressGuard, WebhookAddressError } from "./address-guard.ts";
import { type WebhookMessage, webhookHeaders } from "./signing.ts";

export interface WebhookSenderOptions {
  guard: AddressGuard;
  /** Deadline of one request, connect to last byte read. */
  timeoutMs: number;
  /** Bytes of the response body read at most (default 4 KiB). */
  maxResponseBytes?: number;
  /** Connection pools kept (one per origin and address; default 256). */
  maxPools?: number;
  /** Connections per pool at most (default 64). */
  connectionsPerOrigin?: number;
}

/** What the sender needs of an endpoint. */
export interface SendTarget {
  url: string;
  /** The current secret first; the previous one too during a rotation's overlap. */
  secrets: readonly string[];
}

export interface SendResult {
  /** True for a 2xx answer. */
  ok: boolean;
  /** The receiver's HTTP status; null when it gave none (refused URL, timeout, connection error). */
  status: number | null;
  latencyMs: number;
  /** Why it was not a success, for the attempts history; absent on success. */
  error?: string;
  /** The start of the response body (at most maxResponseBytes), as text. */
  body: string;
  /** True when the URL was refused by the address guard (nothing was sent). */
  refused: boolean;
}

export interface WebhookSender {
  /** POSTs `message.body` to the endpoint, signed with each of its secrets. */
  sendWebhook(target: SendTarget, message: WebhookMessage): Promise<SendResult>;
  close(): Promise<void>;
}

export const DEFAULT_MAX_RESPONSE_BYTES = 4096;

const readCapped = async (body: AsyncIterable<Buffer> & { destroy(): unknown }, max: number) => {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const room = max - size;
    chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
    size += Math.min(chunk.length, room);
    if (size >= max) break; // leaving the loop destroys the stream: the rest is never read
  }
  return Buffer.concat(chunks).toString("utf8");
};

export const createWebhookSender = (options: WebhookSenderOptions): WebhookSender => {
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const maxPools = options.maxPools ?? 256;
  const pools = new Map<string, Agent>();

  const pinnedAgent = (origin: string, address: string, family: 4 | 6): Agent => {
    const key = `${origin}|${address}`;
    const found = pools.get(key);
    if (found) {
      // Most recently used last, so the first key is the one to evict.
      pools.delete(key);
      pools.set(key, found);
      return found;
    }
    const lookup: LookupFunction = (_hostname, lookupOptions, callback) => {
      if (lookupOptions.all) callback(null, [{ address, family }]);
      else callback(null, address, family);
    };
    // Each endpoint has one request in flight: endpoints sharing an origin (a platform hosting many
    // receivers) would otherwise queue behind a few connections.
    const agent = new Agent({
      connect: { lookup, timeout: options.timeoutMs },
      connections: options.connectionsPerOrigin ?? 64,
    });
    pools.set(key, agent);
    if (pools.size > maxPools) {
      const [oldestKey, oldest] = pools.entries().next().value as [string, Agent];
      pools.delete(oldestKey);
      void oldest.close().catch(() => undefined);
    }
    return agent;
  };

  return {
    async sendWebhook(target, message) {
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      let checked = options.guard.kept(target.url);
      if (!checked) {
        try {
          checked = await options.guard.check(target.url);
        } catch (error) {
          const reason = error instanceof WebhookAddressError ? error.message : String(error);
          return { ok: false, status: null, latencyMs: elapsed(), error: reason, body: "", refused: true };
        }
      }
      const dispatcher = pinnedAgent(checked.url.origin, checked.address, checked.family);
      try {
        const response = await request(checked.url, {
          method: "POST",
          dispatcher,
          headers: webhookHeaders(target.secrets, message),
          body: message.body,
          signal: AbortSignal.timeout(options.timeoutMs),
          headersTimeout: options.timeoutMs,
          bodyTimeout: options.timeoutMs,
        });
        const body = await readCapped(response.body, maxResponseBytes).catch(() => "");
        const status = response.statusCode;
        const ok = status >= 200 && status < 300;
        const error = ok
          ? undefined
          : status >= 300 && status < 400
            ? `redirect ${status} not followed`
            : `HTTP ${status}`;
        return { ok, status, latencyMs: elapsed(), ...(error ? { error } : {}), body, refused: false };
      } catch (error) {
        const cause = error as NodeJS.ErrnoException;
        const reason =
          cause.name === "TimeoutError" || cause.name === "AbortError"
            ? `timed out after ${options.timeoutMs} ms`
            : `${cause.code ?? cause.name}: ${cause.message}`;
        return { ok: false, status: null, latencyMs: elapsed(), error: reason, body: "", refused: false };
      }
    },

    async close() {
      const agents = [...pools.values()];
      pools.clear();
      await Promise.all(agents.map((agent) => agent.close().catch(() => undefined)));
    },
  };
};
