/**
 * Per-credential request limits on /v1, answered early: a credential over its budget gets
 * 429 RATE_LIMITED with `Retry-After` (the seconds until its window ends) before its request
 * reads anything, instead of queueing behind everyone else's. A reconnect storm (every
 * consumer reading its history at once) is then spread out by the clients, which wait as told
 * (the SDK adds jitter), rather than piling up in the database pool.
 *
 * @fastify/rate-limit counts in memory, per process, in fixed windows, keyed by credential id.
 */
import fastifyRateLimit from "@fastify/rate-limit";
import type { FastifyInstance } from "fastify";
import { BrewcastError } from "../domain/errors.ts";

export interface CredentialRateLimit {
  /** Requests one credential may make per window. */
  max: number;
  windowMs: number;
}

/** Applies to every route registered on `scope` after it; needs `request.principal` set before. */
export const registerCredentialRateLimit = async (
  scope: FastifyInstance,
  limit: CredentialRateLimit,
): Promise<void> => {
  await scope.register(fastifyRateLimit, {
    max: limit.max,
    timeWindow: limit.windowMs,
    // A route-level onRequest hook: after the scope's authentication hook, before body and query.
    hook: "onRequest",
    keyGenerator: (request) => request.principal?.credentialId ?? request.ip,
    // Credentials seen within a window; an LRU beyond that (one forgotten restarts its window).
    cache: 100_000,
    errorResponseBuilder: (_request, context) =>
      new BrewcastError(
        "RATE_LIMITED",
        `this credential made more than ${context.max} requests within ${limit.windowMs} ms; retry after ${context.after} (Retry-After), spread with jitter`,
      ),
  });
};
