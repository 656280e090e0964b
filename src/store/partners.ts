/**
 * Partners and shops: creation, lookup, and the partner state (the kill switch).
 */
import { BrewcastError } from "../domain/errors.ts";
import type { Partner, PartnerState, Shop } from "../domain/partners.ts";
import { publishAccessChange } from "./access-feed.ts";
import type { Db } from "./db.ts";

interface PartnerRow extends Record<string, unknown> {
  id: string;
  name: string;
  state: PartnerState;
  head_seq: number;
  created_at: Date;
}

interface ShopRow extends Record<string, unknown> {
  partner_id: string;
  id: string;
  name: string;
  created_at: Date;
}

const toPartner = (row: PartnerRow): Partner => ({
  id: row.id,
  name: row.name,
  state: row.state,
  head_seq: row.head_seq,
  created_at: row.created_at.toISOString(),
});

const toShop = (row: ShopRow): Shop => ({
  partner_id: row.partner_id,
  id: row.id,
  name: row.name,
  created_at: row.created_at.toISOString(),
});

const PARTNER_COLUMNS = "id, name, state, head_seq, created_at";

export interface PartnerStore {
  create(id: string, name: string): Promise<Partner>;
  get(id: string): Promise<Partner>;
  createShop(partnerId: string, id: string, name: string): Promise<Shop>;
  listShops(partnerId: string): Promise<Shop[]>;
  /** Sets the state and tells every process (live disconnects on suspension). */
  setState(id: string, state: PartnerState): Promise<Partner>;
}

export const createPartnerStore = (db: Db): PartnerStore => {
  const get = async (id: string): Promise<Partner> => {
    const [row] = await db.query<PartnerRow>(`SELECT ${PARTNER_COLUMNS} FROM partners WHERE id = $1`, [id]);
    if (!row) throw new BrewcastError("NOT_FOUND", `no partner ${id}`);
    return toPartner(row);
  };
  return {
    get,
    async create(id, name) {
      const [row] = await db.query<PartnerRow>(
        `INSERT INTO partners (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING ${PARTNER_COLUMNS}`,
        [id, name],
      );
      if (!row) throw new BrewcastError("CONFLICT", `partner ${id} already exists`);
      return toPartner(row);
    },
    async createShop(partnerId, id, name) {
      return db.transaction(async (tx) => {
        const [partner] = await tx.query("SELECT 1 FROM partners WHERE id = $1", [partnerId]);
        if (!partner) throw new BrewcastError("NOT_FOUND", `no partner ${partnerId}`);
        const [row] = await tx.query<ShopRow>(
          `INSERT INTO shops (partner_id, id, name) VALUES ($1, $2, $3)
           ON CONFLICT (partner_id, id) DO NOTHING RETURNING partner_id, id, name, created_at`,
          [partnerId, id, name],
        );
        if (!row) throw new BrewcastError("CONFLICT", `shop ${id} already exists for partner ${partnerId}`);
        return toShop(row);
      });
    },
    async listShops(partnerId) {
      await get(partnerId);
      const rows = await db.query<ShopRow>(
        "SELECT partner_id, id, name, created_at FROM shops WHERE partner_id = $1 ORDER BY id",
        [partnerId],
      );
      return rows.map(toShop);
    },
    async setState(id, state) {
      return db.transaction(async (tx) => {
        const [row] = await tx.query<PartnerRow>(
          `UPDATE partners SET state = $2 WHERE id = $1 RETURNING ${PARTNER_COLUMNS}`,
          [id, state],
        );
        if (!row) throw new BrewcastError("NOT_FOUND", `no partner ${id}`);
        await publishAccessChange(tx, { type: "partner_state_changed", partnerId: id, state });
        return toPartner(row);
      });
    },
  };
};
