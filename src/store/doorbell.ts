/**
 * The doorbell: a NOTIFY that tells a delivery core in another process that
 * events were committed (`createDoorbell` rings it; `decodeRing` reads a ring
 * for src/store/delivery-log.ts, which listens).
 *
 * Writers must not NOTIFY inside their own transactions
 * (NOTIFY takes a cluster-wide lock through commit and measured 0.24× insert
 * throughput at 16 writers). Instead each process rings after its commits,
 * from outside the write path, with at most one NOTIFY in flight and at most
 * one per `DOORBELL_INTERVAL_MS`: rings that arrive meanwhile are coalesced
 * into the next one. (A delivery core in the writer's own process is handed
 * the events directly and needs no doorbell.)
 *
 * A ring carries the events it announces, as far as they fit in a NOTIFY,
 * so that the reader need not read them back: at 1,000 events/s that read
 * was 200 queries a second, the largest part of the bridge's own work. The
 * listener takes carried events only from a sender logged in as its own database
 * role (any role that may connect may NOTIFY); otherwise, and for a partner
 * whose events did not fit, the ring only names the partner and the log is read.
 * Either way the handover only saves a read: an event is delivered
 * only when it continues the partner's delivered seq without a gap.
 *
 * Imports domain and this folder only (the ring's shape is domain's `DoorbellRing`).
 */
import type { DoorbellRing } from "../domain/delivery.ts";
import { EVENT_KIND, type OrderEvent } from "../domain/events.ts";
import type { Db } from "./db.ts";

/** The doorbell's channel: a JSON ring, `{"partners": [ids] | "*", "events": [events]}`. */
export const DOORBELL_CHANNEL = "brewcast_committed";
/**
 * The channel of earlier releases, whose rings are comma-separated partner ids (or `*`). Still
 * heard, so that their writers wake this bridge during a rolling upgrade; the JSON rings went to
 * a channel of their own so that an earlier bridge never takes one for a list of ids.
 */
export const LEGACY_DOORBELL_CHANNEL = "brewcast_events";
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
