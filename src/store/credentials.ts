/**
 * Credentials: created with a secret shown once and stored only as its
 * SHA-256; verified through a short-lived cache that access changes clear.
 */
import { createHash, randomBytes } from "node:crypto";
import type { AccessChanges, CredentialVerifier, LoginResult } from "../domain/access.ts";
import { BrewcastError } from "../domain/errors.ts";
import type { CreateCredentialBody, Credential, CredentialKind } from "../domain/partners.ts";
import { publishAccessChange } from "./access-feed.ts";
import type { Db, Queryable } from "./db.ts";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

export const newCredentialId = (): string => {
  const bytes = randomBytes(20);
  let id = "cr-";
  for (const byte of bytes) id += BASE32[byte & 31];
  return id;
};

/** 32 random bytes; the prefix makes leaked secrets easy to find with secret scanners. */
export const newSecret = (): string => `bcs_${randomBytes(32).toString("base64url")}`;

export const hashSecret = (secret: string): Buffer => createHash("sha256").update(secret, "utf8").digest();

export const normaliseFingerprint = (fingerprint: string): string =>
  fingerprint.replaceAll(":", "").toLowerCase();

interface CredentialRow extends Record<string, unknown> {
  id: string;
  partner_id: string;
  kind: CredentialKind;
  shop_id: string | null;
  created_at: Date;
  revoked_at: Date | null;
  cert_fingerprint: string | null;
  partner_state?: string;
}

const toCredential = (row: CredentialRow): Credential => ({
  id: row.id,
  partner_id: row.partner_id,
  kind: row.kind,
  shop_id: row.shop_id,
  created_at: row.created_at.toISOString(),
  revoked_at: row.revoked_at?.toISOString() ?? null,
  cert_fingerprint: row.cert_fingerprint,
});

const SELECT_LOGIN = `
  SELECT c.id, c.partner_id, c.kind, c.shop_id, c.created_at, c.revoked_at, c.cert_fingerprint, p.state AS partner_state
  FROM credentials c JOIN partners p ON p.id = c.partner_id`;

const toLoginResult = (row: CredentialRow | undefined): LoginResult => {
  if (!row) return { ok: false, refusal: "bad_credentials" };
  if (row.revoked_at) return { ok: false, refusal: "revoked" };
  if (row.partner_state === "suspended") return { ok: false, refusal: "suspended" };
  return {
    ok: true,
    principal: { credentialId: row.id, partnerId: row.partner_id, kind: row.kind, shopId: row.shop_id },
  };
};

export interface CredentialStore extends CredentialVerifier {
  create(partnerId: string, body: CreateCredentialBody): Promise<{ credential: Credential; secret: string }>;
  revoke(credentialId: string): Promise<Credential>;
  registerCertificate(credentialId: string, fingerprint: string): Promise<Credential>;
  get(credentialId: string): Promise<Credential>;
  list(partnerId: string): Promise<Credential[]>;
  /**
   * Forgets every cached login answer. Nothing in the product needs to call it: the cache
   * clears itself on every access change (`accessChanges`, which the partner store announces
   * in-process as soon as it committed); for tests that change access behind the stores' back.
   */
  clearCache(): void;
}

export interface CredentialStoreOptions {
  /** How long a verified login is trusted without asking the database again. */
  cacheTtlMs?: number;
  accessChanges?: AccessChanges;
}

export const createCredentialStore = (db: Db, options: CredentialStoreOptions = {}): CredentialStore => {
  const ttl = options.cacheTtlMs ?? 2_000;
  const cache = new Map<string, { result: LoginResult; expires: number }>();
  const MAX_CACHE = 10_000;
  // Any revocation or partner change clears every cached answer: rare, and simpler than indexing.
  options.accessChanges?.subscribe(() => cache.clear());

  const cached = async (key: string, load: () => Promise<LoginResult>): Promise<LoginResult> => {
    const now = Date.now();
    const hit = cache.get(key);
    if (hit && hit.expires > now) return hit.result;
    const result = await load();
    if (cache.size >= MAX_CACHE) cache.clear();
    cache.set(key, { result, expires: now + ttl });
    return result;
  };

  const getRow = async (q: Queryable, credentialId: string): Promise<CredentialRow> => {
    const [row] = await q.query<CredentialRow>(`${SELECT_LOGIN} WHERE c.id = $1`, [credentialId]);
    if (!row) throw new BrewcastError("NOT_FOUND", `no credential ${credentialId}`);
    return row;
  };

  return {
    async verifySecret(credentialId, secret) {
      const hash = hashSecret(secret);
      return cached(`s:${credentialId}:${hash.toString("hex")}`, async () => {
        const [row] = await db.query<CredentialRow>(
          `${SELECT_LOGIN} WHERE c.secret_hash = $1 AND c.id = $2`,
          [hash, credentialId],
        );
        return toLoginResult(row);
      });
    },
    async verifyBearer(secret) {
      const hash = hashSecret(secret);
      return cached(`b:${hash.toString("hex")}`, async () => {
        const [row] = await db.query<CredentialRow>(`${SELECT_LOGIN} WHERE c.secret_hash = $1`, [hash]);
        return toLoginResult(row);
      });
    },
    async verifyCertificate(fingerprint) {
      const normalised = normaliseFingerprint(fingerprint);
      return cached(`c:${normalised}`, async () => {
        const [row] = await db.query<CredentialRow>(`${SELECT_LOGIN} WHERE c.cert_fingerprint = $1`, [
          normalised,
        ]);
        return toLoginResult(row);
      });
    },
    async verifyCredentialId(credentialId) {
      return cached(`i:${credentialId}`, async () => {
        const [row] = await db.query<CredentialRow>(`${SELECT_LOGIN} WHERE c.id = $1`, [credentialId]);
        return toLoginResult(row);
      });
    },
    async create(partnerId, body) {
      const secret = newSecret();
      const shopId = body.kind === "device" ? body.shop_id : null;
      const credential = await db.transaction(async (tx) => {
        const [partner] = await tx.query("SELECT 1 FROM partners WHERE id = $1", [partnerId]);
        if (!partner) throw new BrewcastError("NOT_FOUND", `no partner ${partnerId}`);
        if (shopId) {
          const [shop] = await tx.query("SELECT 1 FROM shops WHERE partner_id = $1 AND id = $2", [
            partnerId,
            shopId,
          ]);
          if (!shop) {
            throw new BrewcastError("VALIDATION_FAILED", `partner ${partnerId} has no shop ${shopId}`, [
              { field: "body.shop_id", message: "no such shop for this partner" },
            ]);
          }
        }
        const [row] = await tx.query<CredentialRow>(
          `INSERT INTO credentials (id, partner_id, kind, shop_id, secret_hash) VALUES ($1, $2, $3, $4, $5)
           RETURNING id, partner_id, kind, shop_id, created_at, revoked_at, cert_fingerprint`,
          [newCredentialId(), partnerId, body.kind, shopId, hashSecret(secret)],
        );
        return toCredential(row!);
      });
      return { credential, secret };
    },
    async revoke(credentialId) {
      const row = await db.transaction(async (tx) => {
        await tx.query("UPDATE credentials SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", [
          credentialId,
        ]);
        const updated = await getRow(tx, credentialId);
        await publishAccessChange(tx, {
          type: "credential_revoked",
          credentialId,
          partnerId: updated.partner_id,
        });
        return updated;
      });
      cache.clear();
      return toCredential(row);
    },
    async registerCertificate(credentialId, fingerprint) {
      const normalised = normaliseFingerprint(fingerprint);
      const row = await db.transaction(async (tx) => {
        const current = await getRow(tx, credentialId);
        if (current.revoked_at) throw new BrewcastError("CONFLICT", `credential ${credentialId} is revoked`);
        const [taken] = await tx.query(
          "SELECT id FROM credentials WHERE cert_fingerprint = $1 AND id <> $2",
          [normalised, credentialId],
        );
        if (taken)
          throw new BrewcastError("CONFLICT", "this certificate is registered to another credential");
        try {
          await tx.query("UPDATE credentials SET cert_fingerprint = $2 WHERE id = $1", [
            credentialId,
            normalised,
          ]);
        } catch (error) {
          // A concurrent registration of the same certificate won the unique index.
          if ((error as { code?: string }).code === "23505") {
            throw new BrewcastError("CONFLICT", "this certificate is registered to another credential");
          }
          throw error;
        }
        return getRow(tx, credentialId);
      });
      cache.clear();
      return toCredential(row);
    },
    clearCache() {
      cache.clear();
    },
    async get(credentialId) {
      return toCredential(await getRow(db, credentialId));
    },
    async list(partnerId) {
      const rows = await db.query<CredentialRow>(
        `${SELECT_LOGIN} WHERE c.partner_id = $1 ORDER BY c.created_at, c.id`,
        [partnerId],
      );
      return rows.map(toCredential);
    },
  };
};
