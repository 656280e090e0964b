/**
 * Who is calling: a partner credential (`Authorization: Bearer <secret>`)
 * on /v1, the admin token on /admin/v1. Resolved before validation, so an
 * anonymous caller learns nothing about the shape of a route.
 */
import { timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import type { CredentialVerifier, LoginResult } from "../domain/access.ts";
import { BrewcastError } from "../domain/errors.ts";
import type { Principal } from "../domain/partners.ts";
import type { StreamTickets } from "./stream-tickets.ts";

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
  }
}

const BEARER = /^Bearer ([\x21-\x7e]{1,512})$/;

const bearerToken = (request: FastifyRequest): string => {
  const header = request.headers.authorization;
  if (header === undefined) throw new BrewcastError("UNAUTHENTICATED", "send Authorization: Bearer <secret>");
  const match = BEARER.exec(header);
  if (!match)
    throw new BrewcastError("UNAUTHENTICATED", "the Authorization header must be 'Bearer <secret>'");
  return match[1]!;
};

const principalFromLogin = (result: LoginResult): Principal => {
  if (result.ok) return result.principal;
  if (result.refusal === "suspended") {
    throw new BrewcastError("PARTNER_SUSPENDED", "this partner is suspended; contact the platform operator");
  }
  throw new BrewcastError(
    "UNAUTHENTICATED",
    result.refusal === "revoked" ? "this credential was revoked" : "unknown credential",
  );
};

export const authenticatePartner = async (
  request: FastifyRequest,
  verifier: CredentialVerifier,
): Promise<Principal> => principalFromLogin(await verifier.verifyBearer(bearerToken(request)));

/** GET /v1/events/stream?ticket=: EventSource sends no Authorization header (stream-tickets.ts). */
export const authenticateTicket = async (
  ticket: string,
  verifier: CredentialVerifier,
  tickets: StreamTickets,
): Promise<Principal> => {
  const credentialId = tickets.verify(ticket);
  if (credentialId === undefined) {
    throw new BrewcastError(
      "UNAUTHENTICATED",
      "this event stream ticket is invalid or expired: ask POST /v1/events/stream/tickets for a new one",
    );
  }
  return principalFromLogin(await verifier.verifyCredentialId(credentialId));
};

export const authenticateAdmin = (request: FastifyRequest, adminToken: string): void => {
  const given = Buffer.from(bearerToken(request));
  const expected = Buffer.from(adminToken);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new BrewcastError("UNAUTHENTICATED", "invalid admin token");
  }
};

/** The principal of a /v1 request; the onRequest hook guarantees it is set. */
export const principalOf = (request: FastifyRequest): Principal => {
  if (!request.principal) throw new BrewcastError("UNAUTHENTICATED", "not authenticated");
  return request.principal;
};
