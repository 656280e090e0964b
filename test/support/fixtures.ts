/**
 * Seeds partners, shops and credentials with unique ids, through the same
 * store code the admin API uses.
 */
import { randomBytes } from "node:crypto";
import { createCredentialStore } from "../../src/store/credentials.ts";
import type { Db } from "../../src/store/db.ts";
import { createPartnerStore } from "../../src/store/partners.ts";

export const uniqueId = (prefix: string): string => `${prefix}-${randomBytes(4).toString("hex")}`;

export interface SeededCredential {
  id: string;
  secret: string;
}

export interface SeededPartner {
  id: string;
  shops: string[];
  backend: SeededCredential;
  /** One device credential per shop, in the order of `shops`. */
  devices: SeededCredential[];
}

export const seedPartner = async (
  db: Db,
  options: { shops?: number; prefix?: string } = {},
): Promise<SeededPartner> => {
  const partners = createPartnerStore(db);
  const credentials = createCredentialStore(db);
  const id = uniqueId(options.prefix ?? "p");
  await partners.create(id, `Partner ${id}`);
  const shops: string[] = [];
  for (let i = 0; i < (options.shops ?? 2); i++) {
    const shopId = `shop-${i + 1}`;
    await partners.createShop(id, shopId, `Shop ${i + 1}`);
    shops.push(shopId);
  }
  const backend = await credentials.create(id, { kind: "backend" });
  const devices: SeededCredential[] = [];
  for (const shopId of shops) {
    const device = await credentials.create(id, { kind: "device", shop_id: shopId });
    devices.push({ id: device.credential.id, secret: device.secret });
  }
  return { id, shops, backend: { id: backend.credential.id, secret: backend.secret }, devices };
};
