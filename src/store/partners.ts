/**
 * Partners and shops: creation, lookup, and the partner state (the kill switch).
 */
import { BrewcastError } from "../domain/errors.ts";
import type { Partner, PartnerState, Shop, StateChange, StateTransition } from "../domain/partners.ts";
import { type AccessAnnouncer, publishAccessChange } from "./access-feed.ts";
import type { Db, Queryable } from "./db.ts";

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

/** Writes the move and its audit row in the caller's transaction, and tells every process. */
const recordTransition = async (
  tx: Queryable,
  id: string,
  from: PartnerState,
  to: PartnerState,
  change: StateChange,
): Promise<void> => {
  await tx.query(
    `UPDATE partners SET state = $2, state_pinned = $3, state_changed_at = CASE WHEN state = $2 THEN state_changed_at ELSE now() END
     WHERE id = $1`,
    [id, to, change.pinned],
  );
  await tx.query(
    `INSERT INTO partner_state_audit (partner_id, from_state, to_state, pinned, actor, reason) VALUES ($1, $2, $3, $4, $5, $6)`,
    [id, from, to, change.pinned, change.actor, change.reason],
  );
  await publishAccessChange(tx, { type: "partner_state_changed", partnerId: id, state: to });
};

export interface PartnerStore {
  create(id: string, name: string): Promise<Partner>;
  get(id: string): Promise<Partner>;
  /** Every partner, by id. */
  list(): Promise<Partner[]>;
  createShop(partnerId: string, id: string, name: string): Promise<Shop>;
  listShops(partnerId: string): Promise<Shop[]>;
  /**
   * Moves a partner on the ladder, audits the move, and tells every process
   * (live disconnects on suspension). Without `change`, an operator's move:
   * suspension pins the state, anything else unpins it.
   */
  setState(id: string, state: PartnerState, change?: StateChange): Promise<Partner>;
  /** The monitor's move: applied only if the partner is still in `from` and not pinned. */
  stepLadder(id: string, from: PartnerState, to: PartnerState, reason: string): Promise<boolean>;
  /** Every partner's state, for the monitor. */
  listStates(): Promise<{ id: string; state: PartnerState; pinned: boolean }[]>;
  audit(id: string, limit: number): Promise<StateTransition[]>;
}

export interface PartnerStoreOptions {
  /** Told of every committed state change, so this process's credential cache and broker act at once. */
  accessFeed?: AccessAnnouncer;
}

export const createPartnerStore = (db: Db, options: PartnerStoreOptions = {}): PartnerStore => {
  const announce = (partnerId: string, state: PartnerState) =>
    options.accessFeed?.announce({ type: "partner_state_changed", partnerId, state });
  const get = async (id: string): Promise<Partner> => {
    const [row] = await db.query<PartnerRow>(`SELECT ${PARTNER_COLUMNS} FROM partners WHERE id = $1`, [id]);
    if (!row) throw new BrewcastError("NOT_FOUND", `no partner ${id}`);
    return toPartner(row);
  };
  return {
    get,
    async list() {
      const rows = await db.query<PartnerRow>(`SELECT ${PARTNER_COLUMNS} FROM partners ORDER BY id`);
      return rows.map(toPartner);
    },
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
    async setState(id, state, change) {
      const effective = change ?? { actor: "operator", reason: "admin API", pinned: state === "suspended" };
      const partner = await db.transaction(async (tx) => {
        const [current] = await tx.query<{ state: PartnerState }>(
          "SELECT state FROM partners WHERE id = $1 FOR UPDATE",
          [id],
        );
        if (!current) throw new BrewcastError("NOT_FOUND", `no partner ${id}`);
        await recordTransition(tx, id, current.state, state, effective);
        const [row] = await tx.query<PartnerRow>(`SELECT ${PARTNER_COLUMNS} FROM partners WHERE id = $1`, [
          id,
        ]);
        return toPartner(row!);
      });
      announce(id, state);
      return partner;
    },
    async stepLadder(id, from, to, reason) {
      const moved = await db.transaction(async (tx) => {
        const [current] = await tx.query<{ state: PartnerState; state_pinned: boolean }>(
          "SELECT state, state_pinned FROM partners WHERE id = $1 FOR UPDATE",
          [id],
        );
        if (!current || current.state !== from || current.state_pinned) return false;
        await recordTransition(tx, id, from, to, { actor: "monitor", reason, pinned: false });
        return true;
      });
      if (moved) announce(id, to);
      return moved;
    },
    async listStates() {
      const rows = await db.query<{ id: string; state: PartnerState; state_pinned: boolean }>(
        "SELECT id, state, state_pinned FROM partners ORDER BY id",
      );
      return rows.map((row) => ({ id: row.id, state: row.state, pinned: row.state_pinned }));
    },
    async audit(id, limit) {
      const rows = await db.query<{
        from_state: PartnerState;
        to_state: PartnerState;
        pinned: boolean;
        actor: string;
        reason: string;
        at: Date;
      }>(
        `SELECT from_state, to_state, pinned, actor, reason, at FROM partner_state_audit
         WHERE partner_id = $1 ORDER BY id DESC LIMIT $2`,
        [id, limit],
      );
      return rows.map((row) => ({
        from: row.from_state,
        to: row.to_state,
        pinned: row.pinned,
        actor: row.actor,
        reason: row.reason,
        at: row.at.toISOString(),
      }));
    },
  };
};
