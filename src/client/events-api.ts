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
  constructor(status: number, code: string | undefined, detail: string) {
    super(`GET /v1/events: ${status}${code ? ` ${code}` : ""}${detail ? `: ${detail}` : ""}`);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
  /** Retrying cannot help: bad credentials, a revoked credential, a bad request, an expired cursor. */
  get permanent(): boolean {
    return this.status === 400 || this.status === 401 || this.status === 404 || this.status === 410;
  }
}

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
      const response = await doFetch(url, {
        headers,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
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
        throw new ApiError(response.status, code, detail);
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
