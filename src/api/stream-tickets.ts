/**
 * Event stream tickets: how a browser's EventSource, which cannot send an
 * Authorization header, opens GET /v1/events/stream. A caller with its
 * bearer secret asks for a ticket (POST /v1/events/stream/tickets) and puts
 * it in the stream's URL. A ticket names its credential and its expiry and
 * is signed (HMAC-SHA256) with a key derived from BREWCAST_ADMIN_TOKEN, so
 * every node that shares the token accepts it; it opens the event stream
 * only, of the credential's own scope, and the credential is checked again
 * (revoked, suspended) at every use. The secret never appears in a URL.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const TICKET_TTL_MS = 15 * 60_000;

export interface StreamTickets {
  issue(credentialId: string, now?: number): { ticket: string; expiresAt: Date };
  /** The credential a ticket was issued to, or undefined for a forged, altered or expired one. */
  verify(ticket: string, now?: number): string | undefined;
}

export const createStreamTickets = (adminToken: string, ttlMs = TICKET_TTL_MS): StreamTickets => {
  const key = createHmac("sha256", adminToken).update("brewcast event stream ticket v1").digest();
  const sign = (payload: string) => createHmac("sha256", key).update(payload).digest();
  return {
    issue(credentialId, now = Date.now()) {
      const expiresAt = new Date(now + ttlMs);
      const payload = Buffer.from(JSON.stringify({ c: credentialId, e: expiresAt.getTime() })).toString(
        "base64url",
      );
      return { ticket: `${payload}.${sign(payload).toString("base64url")}`, expiresAt };
    },
    verify(ticket, now = Date.now()) {
      const [payload, mac, extra] = ticket.split(".");
      if (payload === undefined || mac === undefined || extra !== undefined) return undefined;
      const given = Buffer.from(mac, "base64url");
      const expected = sign(payload);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
      try {
        const { c, e } = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as {
          c: unknown;
          e: unknown;
        };
        return typeof c === "string" && typeof e === "number" && e > now ? c : undefined;
      } catch {
        return undefined;
      }
    },
  };
};
