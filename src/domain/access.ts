/**
 * Who may connect, and the live changes to that (revocation, suspension).
 * Ports implemented by the store and used by the api and the broker. Pure.
 */
import type { PartnerState, Principal } from "./partners.ts";

export type LoginRefusal = "bad_credentials" | "revoked" | "suspended";

export type LoginResult = { ok: true; principal: Principal } | { ok: false; refusal: LoginRefusal };

export interface CredentialVerifier {
  /** MQTT password login: username = credential id, password = secret. */
  verifySecret(credentialId: string, secret: string): Promise<LoginResult>;
  /** HTTP bearer login: the secret alone identifies its credential. */
  verifyBearer(secret: string): Promise<LoginResult>;
  /** Mutual TLS: the SHA-256 fingerprint (lower-case hex, no colons) of the client certificate. */
  verifyCertificate(fingerprint: string): Promise<LoginResult>;
  /** A credential already proven (an event stream ticket it signed for): is it still allowed? */
  verifyCredentialId(credentialId: string): Promise<LoginResult>;
}

export type AccessChange =
  | { type: "credential_revoked"; credentialId: string; partnerId: string }
  | { type: "partner_state_changed"; partnerId: string; state: PartnerState };

/** Live access changes, from every process sharing the database. */
export interface AccessChanges {
  subscribe(handler: (change: AccessChange) => void): () => void;
}
