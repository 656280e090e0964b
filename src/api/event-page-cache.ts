/**
 * HTTP caching of `GET /v1/events` pages: what may be kept, where, and for how long.
 *
 * The log is append-only and a page is named by its cursor, so a *full* page that ends before
 * the head (`limit` events, the last below `head_seq`) never changes: the same events, in the
 * same order, whoever asks again. Only its `head_seq` (the head when it was read) ages, and a
 * reader that pages on learns the newer head from the next page. Such a page is
 * `private, max-age=86400, immutable`. A page that reaches the head may still grow: it is
 * `private, no-cache`, kept but revalidated on every use (a 304 when nothing was added).
 *
 * Why it cannot leak across partners or shops:
 * - `private`: no shared cache (a reverse proxy, a CDN) stores it; only the caller's own cache.
 *   Requests carry `Authorization`, which shared caches may not answer from anyway (RFC 9111 §3.5).
 * - `Vary: Authorization`: a cache that keeps it keys it by the credential that read it.
 * - The ETag is a digest of partner, scope (the shop, or the whole partner), epoch, cursor, limit
 *   and what the page holds: two partners, or a shop and its partner, asking for the same cursor
 *   get different ETags, so one's validator never revalidates another's body.
 */
import { createHash } from "node:crypto";
import type { EventPageText, EventQuery } from "../domain/events.ts";

/** How long a full page below the head may be reused without asking (a day: bounds even a restored log). */
export const IMMUTABLE_PAGE_SECONDS = 86_400;

export interface PageValidators {
  etag: string;
  cacheControl: string;
}

/** A full page ending before the head never changes; anything else may still grow. */
export const isImmutablePage = (page: EventPageText, limit: number): boolean =>
  page.count === limit && page.lastSeq < page.head_seq;

export const pageValidators = (query: EventQuery, page: EventPageText): PageValidators => {
  const immutable = isImmutablePage(page, query.limit);
  // A full page's bytes differ only in head_seq; the strong ETag names the exact body, head included.
  const identity = [
    "events.v1",
    query.partnerId,
    query.shopId ?? "*",
    page.epoch,
    query.after,
    query.limit,
    page.count,
    page.lastSeq,
    page.head_seq,
  ].join("\u0000");
  const digest = createHash("sha256").update(identity).digest("base64url").slice(0, 32);
  return {
    etag: `"${digest}"`,
    cacheControl: immutable ? `private, max-age=${IMMUTABLE_PAGE_SECONDS}, immutable` : "private, no-cache",
  };
};

/** Anything longer is not a list of our ETags: ignored, as any malformed value is. */
const MAX_IF_NONE_MATCH = 8_192;

/**
 * Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2), or is `*`. A value
 * that does not parse simply matches nothing: the full page is sent.
 */
export const ifNoneMatchHits = (header: string | string[] | undefined, etag: string): boolean => {
  const value = Array.isArray(header) ? header.join(",") : header;
  if (value === undefined || value.length > MAX_IF_NONE_MATCH) return false;
  if (value.trim() === "*") return true;
  for (const raw of value.split(",")) {
    const tag = raw.trim();
    if ((tag.startsWith("W/") ? tag.slice(2) : tag) === etag) return true;
  }
  return false;
};
