/**
 * The consumer's REST side: `GET /v1/events?after=&limit=&shop_id=`, the
 * authoritative, ordered history. Uses the global fetch (Node 20+, browsers).
 */
import type { OrderEvent } from "../domain/events.ts";

export interface EventsPage {
  events: OrderEvent[];
  /** The latest seq of the scope read: the partner's, or the shop's. */
  head_seq: number;
  epoch: string;
}

/** A non-2xx answer, with the problem+json `code` when there is one. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string | undefined;
  /** How long a 429 or 503 asked to wait (its `Retry-After`), in ms. */
  readonly retryAfterMs: number | undefined;
  constructor(status: number, code: string | undefined, detail: string, retryAfterMs?: number) {
    super(`GET /v1/events: ${status}${code ? ` ${code}` : ""}${detail ? `: ${detail}` : ""}`);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
  /**
   * Retrying cannot help: every 4xx but 408 and 429 (a bad request, bad or revoked
   * credentials, a suspended partner, an unknown shop, an expired cursor) answers the
   * same request the same way again. 408, 429 and 5xx can heal.
   */
  get permanent(): boolean {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

/** `Retry-After` in seconds (the form brewcast sends) or as an HTTP date, in ms. */
const parseRetryAfter = (value: string | null): number | undefined => {
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1_000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
};

/** The request could not be made or got no answer: the API is unreachable or slow. Retried. */
const networkError = (url: URL, error: unknown, timeoutMs: number): Error => {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const why =
    (error as Error).name === "TimeoutError"
      ? `no answer within ${timeoutMs} ms`
      : cause?.message || cause?.code || (error as Error).message;
  return new Error(`GET ${url.origin}${url.pathname}: ${why}`, { cause: error });
};

export interface EventsApi {
  page(after: number, limit: number, signal?: AbortSignal): Promise<EventsPage>;
}

export const createEventsApi = (options: {
  apiUrl: string;
  secret: string;
  shop: string | undefined;
  timeoutMs: number;
  fetch?: typeof fetch;
}): EventsApi => {
  const doFetch = options.fetch ?? fetch;
  const base = new URL("v1/events", options.apiUrl.endsWith("/") ? options.apiUrl : `${options.apiUrl}/`);
  const headers = { authorization: `Bearer ${options.secret}`, accept: "application/json" };
  return {
    async page(after, limit, signal) {
      const url = new URL(base);
      url.searchParams.set("after", String(after));
      url.searchParams.set("limit", String(limit));
      if (options.shop !== undefined) url.searchParams.set("shop_id", options.shop);
      const timeout = AbortSignal.timeout(options.timeoutMs);
      let response: Response;
      try {
        response = await doFetch(url, {
          headers,
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
      } catch (error) {
        // Our own abort (stop) stays as it is; anything else names the API and what failed.
        if (signal?.aborted) throw error;
        throw networkError(url, error, options.timeoutMs);
      }
      if (!response.ok) {
        const text = await response.text().catch(() => "");
        let code: string | undefined;
        let detail = text.slice(0, 300);
        try {
          const problem = JSON.parse(text) as { code?: string; detail?: string; title?: string };
          code = problem.code;
          detail = problem.detail ?? problem.title ?? detail;
        } catch {
          // not problem+json: keep the text
        }
        throw new ApiError(
          response.status,
          code,
          detail,
          parseRetryAfter(response.headers.get("retry-after")),
        );
      }
      const body = (await response.json()) as EventsPage;
      if (
        !Array.isArray(body.events) ||
        typeof body.head_seq !== "number" ||
        typeof body.epoch !== "string"
      ) {
        throw new Error("GET /v1/events: unexpected response shape");
      }
      return body;
    },
  };
};
