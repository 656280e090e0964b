/**
 * A brewcast under test, set up as an operator would: partners, shops and credentials through the
 * admin API, the ladder held at normal, and a wait until the bridge has caught up.
 */
import pg from "pg";
import { nowMs, sleep } from "./machine.ts";

/** A fresh admin token for one bench run's brewcast (BREWCAST_ADMIN_TOKEN). */
export const benchAdminToken = (): string => `bench-${Math.random().toString(36).slice(2)}-admin-token`;

/** POST to the admin API of a brewcast under test; throws unless 201. */
export const adminPost = async (baseUrl: string, token: string, route: string, body: unknown) => {
  const response = await fetch(`${baseUrl}/admin/v1${route}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.status !== 201) throw new Error(`POST ${route}: ${response.status} ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
};

export interface BenchPartner {
  id: string;
  shops: string[];
  credentialId: string;
  secret: string;
}

/** Shop `s` (from 1) as `shop-1`; `paddedShopId` gives `shop-01`, as bench/seed-log.ts seeds them. */
export const plainShopId = (s: number) => `shop-${s}`;
export const paddedShopId = (s: number) => `shop-${String(s).padStart(2, "0")}`;

/** One partner with `shops` shops (`shopId(1…shops)`) and one backend credential. */
export const createPartner = async (
  baseUrl: string,
  token: string,
  partner: { id: string; name: string; shops: number; shopId?: (s: number) => string },
): Promise<BenchPartner> => {
  const { id } = partner;
  await adminPost(baseUrl, token, "/partners", { id, name: partner.name });
  const shops: string[] = [];
  for (let s = 1; s <= partner.shops; s++) {
    const shopId = (partner.shopId ?? plainShopId)(s);
    await adminPost(baseUrl, token, `/partners/${id}/shops`, { id: shopId, name: `Shop ${s}` });
    shops.push(shopId);
  }
  const credential = await adminPost(baseUrl, token, `/partners/${id}/credentials`, { kind: "backend" });
  return { id, shops, credentialId: credential.id as string, secret: credential.secret as string };
};

/** Partners `${prefix}-pNNN`, each with `shops` shops and one backend credential, through the admin API. */
export const createPartners = async (
  baseUrl: string,
  token: string,
  count: number,
  shops: number,
  prefix = "bench",
  shopId: (s: number) => string = plainShopId,
): Promise<BenchPartner[]> => {
  const one = (p: number) =>
    createPartner(baseUrl, token, {
      id: `${prefix}-p${String(p + 1).padStart(3, "0")}`,
      name: `Bench partner ${p + 1}`,
      shops,
      shopId,
    });
  const partners: BenchPartner[] = [];
  for (let p = 0; p < count; p += 8) {
    const batch = Array.from({ length: Math.min(8, count - p) }, (_, i) => one(p + i));
    partners.push(...(await Promise.all(batch)));
  }
  return partners;
};

/**
 * Pins partners to `normal` on the degradation ladder, so the monitor does not
 * throttle them when a loaded machine lets the lag pass its thresholds: these
 * benches measure delivery, not the ladder.
 */
export const pinNormal = async (
  baseUrl: string,
  token: string,
  partners: { id: string }[],
  reason = "benchmark: ladder held at normal",
) => {
  for (const p of partners) {
    const response = await fetch(`${baseUrl}/admin/v1/partners/${p.id}/state`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ state: "normal", reason }),
    });
    if (response.status !== 200) throw new Error(`pin ${p.id}: ${response.status} ${await response.text()}`);
  }
};

/** Waits until the bridge's durable cursors reach every partner's head (or `timeoutMs` passes). */
export const waitCaughtUp = async (url: string, timeoutMs = 60_000): Promise<number> => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const deadline = nowMs() + timeoutMs;
    for (;;) {
      const { rows } = await client.query<{ lag: string }>(
        `SELECT coalesce(sum(p.head_seq - coalesce(c.published_seq, 0)), 0) AS lag
         FROM partners p LEFT JOIN bridge_cursors c ON c.partner_id = p.id`,
      );
      const lag = Number(rows[0]?.lag ?? 0);
      if (lag === 0 || nowMs() > deadline) return lag;
      await sleep(200);
    }
  } finally {
    await client.end();
  }
};
