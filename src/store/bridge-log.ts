/**
 * The store's side of the bridge: durable cursors, backlog queries, the
 * doorbell and the leader lock.
 *
 * The doorbell: writers must not NOTIFY inside their own transactions
 * (NOTIFY takes a cluster-wide lock through commit and measured 0.24× insert
 * throughput at 16 writers). Instead each process rings after its commits,
 * from outside the write path, with at most one NOTIFY in flight and at most
 * one per `DOORBELL_INTERVAL_MS`: rings that arrive meanwhile are coalesced
 * into the next one. (A bridge in the writer's own process is handed the
 * events directly and needs no doorbell.)
 *
 * A ring carries the events it announces, as far as they fit in a NOTIFY,
 * so that the bridge need not read them back: at 1,000 events/s that read
 * was 200 queries a second, the largest part of the bridge's own work. The
 * bridge takes carried events only from a sender logged in as its own database
 * role (any role that may connect may NOTIFY); otherwise, and for a partner
 * whose events did not fit, the ring only names the partner and the bridge
 * reads the log.
 * Either way the handover only saves a read: the bridge publishes an event
 * only when it continues the partner's published seq without a gap.
 */
import type { BridgeLog, DoorbellRing, LeaderLock, PartnerCursors, ScopeCursor } from "../bridge/ports.ts";
import { EVENT_KIND, type OrderEvent } from "../domain/events.ts";
import type { PartnerState } from "../domain/partners.ts";
import type { Db, DbSession, NamedStatement } from "./db.ts";
import { EVENT_COLUMNS, type EventRow, readEpoch, toOrderEvent } from "./event-log.ts";

/** The doorbell's channel: a JSON ring, `{"partners": [ids] | "*", "events": [events]}`. */
export const DOORBELL_CHANNEL = "brewcast_committed";
/**
 * The channel of earlier releases, whose rings are comma-separated partner ids (or `*`). Still
 * heard, so that their writers wake this bridge during a rolling upgrade; the JSON rings went to
 * a channel of their own so that an earlier bridge never takes one for a list of ids.
 */
export const LEGACY_DOORBELL_CHANNEL = "brewcast_events";
/** Advisory lock key of the active bridge. */
const BRIDGE_LOCK_KEY = 0x62726964; // "brid"
/**
 * At most one NOTIFY per this interval per process. Ringing after every commit woke the bridge
 * for one event at a time: with a single writer its reads and publishes took 0.39× of the
 * insert rate. A few ms of latency for bridges in other processes buys batches of events.
 */
export const DOORBELL_INTERVAL_MS = 5;
/** Past this many partners in one ring, ring for everyone. */
const MAX_IDS_PER_RING = 100;
/** NOTIFY payloads must stay under 8000 bytes. */
const MAX_RING_BYTES = 7_900;
/** Events held per partner for the next ring; past it the ring only names the partner. */
const MAX_CARRIED_PER_PARTNER = 50;

export interface Doorbell {
  /** `event` was committed: the next ring names its partner and, if it fits, carries it. */
  ring(event: OrderEvent): void;
  /** Resolves when no ring is pending or in flight (for shutdown and tests). */
  flush(): Promise<void>;
}

/**
 * One ring's payload: every partner named, and the events of as many partners as fit, each
 * partner's all or none (a partner with only some of its events carried would look drained).
 */
export const encodeRing = (pending: ReadonlyMap<string, readonly OrderEvent[] | null>): string => {
  if (pending.size > MAX_IDS_PER_RING) return '{"partners":"*","events":[]}';
  const head = `{"partners":${JSON.stringify([...pending.keys()])},"events":[`;
  let bytes = Buffer.byteLength(head) + 2;
  const carried: string[] = [];
  for (const events of pending.values()) {
    if (events === null) continue;
    const json = events.map((event) => JSON.stringify(event)).join(",");
    const size = Buffer.byteLength(json) + (carried.length > 0 ? 1 : 0);
    if (bytes + size > MAX_RING_BYTES) continue;
    carried.push(json);
    bytes += size;
  }
  return `${head}${carried.join(",")}]}`;
};

/**
 * What an event must look like to be taken from a ring: of this log (its epoch), with the fields
 * the bridge routes and commits by. A ring from an older or newer release that does not fit is
 * only a list of partners to read. A subset of the domain's `orderEventSchema`, on purpose: a
 * full parse measured ~8 µs an event, a quarter of what carrying the event saves the bridge.
 */
const isCarriable = (event: Partial<OrderEvent> | null, epoch: string): event is OrderEvent =>
  typeof event === "object" &&
  event !== null &&
  event.epoch === epoch &&
  Number.isSafeInteger(event.seq) &&
  (event.seq ?? 0) > 0 &&
  typeof event.partner_id === "string" &&
  typeof event.shop_id === "string" &&
  typeof event.type === "string" &&
  Object.hasOwn(EVENT_KIND, event.type) &&
  typeof event.occurred_at === "string" &&
  !Number.isNaN(Date.parse(event.occurred_at));

/** Reads a ring; whatever is not a well-formed ring wakes every partner (the sweep's read). */
export const decodeRing = (payload: string, fromOwnRole: boolean, epoch: string): DoorbellRing => {
  const all: DoorbellRing = { partnerIds: "all", events: [] };
  let ring: unknown;
  try {
    ring = JSON.parse(payload);
  } catch {
    return all;
  }
  const { partners, events } = (ring ?? {}) as { partners?: unknown; events?: unknown };
  if (!Array.isArray(partners) || !partners.every((id) => typeof id === "string")) return all;
  const named = new Set<string>(partners);
  const carried =
    fromOwnRole && Array.isArray(events)
      ? (events as (Partial<OrderEvent> | null)[]).filter(
          (event): event is OrderEvent => isCarriable(event, epoch) && named.has(event.partner_id),
        )
      : [];
  return { partnerIds: partners, events: carried };
};

export const createDoorbell = (
  db: Db,
  onError: (error: unknown) => void = () => {},
  intervalMs = DOORBELL_INTERVAL_MS,
): Doorbell => {
  /** Partner → the events to carry, or null: too many held, the ring only names it. */
  let pending = new Map<string, OrderEvent[] | null>();
  let inFlight: Promise<void> | undefined;
  let lastRangAt = Number.NEGATIVE_INFINITY;
  let timer: NodeJS.Timeout | undefined;
  const send = (): void => {
    if (inFlight || timer || pending.size === 0) return;
    const wait = lastRangAt + intervalMs - Date.now();
    if (wait > 0) {
      timer = setTimeout(() => {
        timer = undefined;
        send();
      }, wait);
      timer.unref();
      return;
    }
    lastRangAt = Date.now();
    const payload = encodeRing(pending);
    pending = new Map();
    inFlight = db
      .notify(DOORBELL_CHANNEL, payload)
      .catch(onError)
      .finally(() => {
        inFlight = undefined;
        send();
      });
  };
  return {
    ring(event) {
      const held = pending.get(event.partner_id);
      // Past MAX_IDS_PER_RING partners the ring names everyone and carries nothing: hold no events.
      if (held === undefined) pending.set(event.partner_id, pending.size < MAX_IDS_PER_RING ? [event] : null);
      else if (held !== null) {
        if (held.length < MAX_CARRIED_PER_PARTNER) held.push(event);
        else pending.set(event.partner_id, null);
      }
      send();
    },
    async flush() {
      for (;;) {
        // Rings held back by the interval go out now.
        if (timer) {
          clearTimeout(timer);
          timer = undefined;
          lastRangAt = Number.NEGATIVE_INFINITY;
          send();
        }
        if (!inFlight) return;
        await inFlight;
      }
    },
  };
};

interface CursorRow extends Record<string, unknown> {
  partner_id: string;
  head_seq: number;
  qos: 0 | 1 | 2;
  state: PartnerState;
  published_seq: number | null;
  occurred_at: Date | null;
}

interface ShopCursorRow extends Record<string, unknown> {
  partner_id: string;
  shop_id: string;
  published_seq: number | null;
  occurred_at: Date | null;
}

/** Up to $3 events of each partner after its seq, partners in the order given: the bridge's hot read. */
const READ_AFTER: NamedStatement = {
  name: "brewcast_read_after",
  text: `SELECT e.* FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS position (partner_id, after_seq, n)
         CROSS JOIN LATERAL (
           SELECT ${EVENT_COLUMNS} FROM order_events
           WHERE partner_id = position.partner_id AND seq > position.after_seq ORDER BY seq LIMIT $3
         ) e
         ORDER BY position.n, e.seq`,
};

const toScopeCursor = (seq: number | null, occurredAt: Date | null): ScopeCursor => ({
  seq: seq ?? 0,
  occurredAt: occurredAt?.toISOString() ?? null,
});

export const createBridgeLog = async (db: Db): Promise<BridgeLog> => {
  const epoch = await readEpoch(db);
  return {
    epoch,
    async loadPartners() {
      const partners = await db.query<CursorRow>(
        `SELECT p.id AS partner_id, p.head_seq, p.qos, p.state, c.published_seq, c.occurred_at
         FROM partners p LEFT JOIN bridge_cursors c ON c.partner_id = p.id ORDER BY p.id`,
      );
      const shops = await db.query<ShopCursorRow>(
        `SELECT s.partner_id, s.id AS shop_id, c.published_seq, c.occurred_at
         FROM shops s LEFT JOIN bridge_shop_cursors c ON c.partner_id = s.partner_id AND c.shop_id = s.id`,
      );
      const byPartner = new Map<string, PartnerCursors>();
      for (const row of partners) {
        byPartner.set(row.partner_id, {
          partnerId: row.partner_id,
          headSeq: row.head_seq,
          qos: row.qos,
          state: row.state,
          published: toScopeCursor(row.published_seq, row.occurred_at),
          shops: new Map(),
        });
      }
      for (const row of shops) {
        byPartner
          .get(row.partner_id)
          ?.shops.set(row.shop_id, toScopeCursor(row.published_seq, row.occurred_at));
      }
      return [...byPartner.values()];
    },
    async partnersWithBacklog() {
      const rows = await db.query<{ id: string }>(
        `SELECT p.id FROM partners p LEFT JOIN bridge_cursors c ON c.partner_id = p.id
         WHERE p.head_seq > coalesce(c.published_seq, 0)`,
      );
      return rows.map((row) => row.id);
    },
    async readAfter(positions, limitEach) {
      if (positions.length === 0) return [];
      const rows = await db.query<EventRow>(READ_AFTER, [
        positions.map((p) => p.partnerId),
        positions.map((p) => p.afterSeq),
        limitEach,
      ]);
      return rows.map((row) => toOrderEvent(row, epoch));
    },
    async commitCursors(commits) {
      // One statement, one round trip, for every partner and shop; sorted, so that two
      // commits can never wait for each other's rows. The rows go as two JSON documents:
      // seven array parameters (a hundred partners every 100 ms) were pg's most allocating
      // work in the bridge, element by element; JSON.stringify makes each one string.
      const sorted = [...commits].sort((a, b) => (a.partnerId < b.partnerId ? -1 : 1));
      const partners = sorted.map(({ partnerId, partner }) => ({
        partner_id: partnerId,
        seq: partner.seq,
        occurred_at: partner.occurredAt,
      }));
      const shops = sorted.flatMap(({ partnerId, shops }) =>
        [...shops]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([shopId, cursor]) => ({
            partner_id: partnerId,
            shop_id: shopId,
            seq: cursor.seq,
            occurred_at: cursor.occurredAt,
          })),
      );
      await db.query(
        `WITH partner_cursor AS (
           INSERT INTO bridge_cursors (partner_id, published_seq, occurred_at, updated_at)
           SELECT partner_id, seq, occurred_at, now()
           FROM json_to_recordset($1::json) AS partner (partner_id text, seq bigint, occurred_at timestamptz)
           ON CONFLICT (partner_id) DO UPDATE SET published_seq = excluded.published_seq,
             occurred_at = excluded.occurred_at, updated_at = now()
           WHERE bridge_cursors.published_seq < excluded.published_seq
         )
         INSERT INTO bridge_shop_cursors (partner_id, shop_id, published_seq, occurred_at)
         SELECT partner_id, shop_id, seq, occurred_at
         FROM json_to_recordset($2::json) AS shop (partner_id text, shop_id text, seq bigint, occurred_at timestamptz)
         ON CONFLICT (partner_id, shop_id) DO UPDATE SET published_seq = excluded.published_seq,
           occurred_at = excluded.occurred_at
         WHERE bridge_shop_cursors.published_seq < excluded.published_seq`,
        [JSON.stringify(partners), JSON.stringify(shops)],
      );
    },
    async onDoorbell(onRing) {
      // Notifications may have been missed while the listen connection was down.
      const missed = () => onRing({ partnerIds: "all", events: [] });
      const unlisten = await db.listen(
        DOORBELL_CHANNEL,
        (payload, fromOwnRole) => onRing(decodeRing(payload, fromOwnRole, epoch)),
        missed,
      );
      let unlistenLegacy: () => Promise<void>;
      try {
        unlistenLegacy = await db.listen(LEGACY_DOORBELL_CHANNEL, (payload) =>
          onRing({ partnerIds: payload === "*" || payload === "" ? "all" : payload.split(","), events: [] }),
        );
      } catch (error) {
        await unlisten();
        throw error;
      }
      return async () => {
        await Promise.all([unlisten(), unlistenLegacy()]);
      };
    },
  };
};

/**
 * The bridge's leader lock: a session-level advisory lock on a dedicated
 * connection. If this process dies, Postgres drops the connection and the
 * lock with it, and a standby's next attempt succeeds.
 */
export const createLeaderLock = (db: Db): LeaderLock => {
  let session: DbSession | undefined;
  let lostHandler: () => void = () => {};
  return {
    async tryAcquire() {
      if (!session) {
        const fresh = await db.session();
        fresh.onLost(() => {
          if (session !== fresh) return;
          session = undefined;
          lostHandler();
        });
        session = fresh;
      }
      const [row] = await session.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1) AS locked", [
        BRIDGE_LOCK_KEY,
      ]);
      return row?.locked === true;
    },
    onLost(handler) {
      lostHandler = handler;
    },
    async release() {
      const current = session;
      session = undefined;
      if (!current) return;
      await current.query("SELECT pg_advisory_unlock_all()").catch(() => undefined);
      await current.release();
    },
  };
};
