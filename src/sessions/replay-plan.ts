/**
 * What a session's subscriptions ask of the log: which events to replay and
 * at which QoS, whether one shop's index suffices, which retained cursors
 * vouch for its position, and which device statuses it follows. Pure.
 * Only QoS 1 and 2 subscriptions are replayed (QoS 0 is at most once).
 */

import type { SessionSubscription } from "../domain/sessions.ts";
import { buildPartnerCursorTopic, buildShopCursorTopic, topicMatchesFilter } from "../domain/topics.ts";

/** Could `filter` match some topic of this shape (`+` in the pattern: any one level)? */
const canMatch = (filter: string, pattern: string[]): boolean => {
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level === "#") return true;
    if (i >= pattern.length) return false;
    if (level !== "+" && pattern[i] !== "+" && level !== pattern[i]) return false;
  }
  return levels.length === pattern.length;
};

export interface ReplayPlan {
  /** Any QoS 1/2 subscription matches order events of the partner. */
  readonly replaysEvents: boolean;
  /** Every such subscription is within this one shop: the log is read through its index. */
  readonly shopId: string | undefined;
  /** The QoS an event on this topic is replayed at: the highest granted; 0 when none (not replayed). */
  qosFor(topic: string): 0 | 1 | 2;
  /** Filters (QoS 1/2) that follow device statuses: their current retained values are sent on resume. */
  readonly statusFilters: SessionSubscription[];
  /** Retained cursor topics whose acknowledgement vouches for every event the session follows. */
  readonly coveringCursors: ReadonlySet<string>;
}

export const planReplay = (partnerId: string, subscriptions: SessionSubscription[]): ReplayPlan => {
  const durable = subscriptions.filter((sub) => sub.qos > 0);
  const eventSubs = durable.filter((sub) =>
    canMatch(sub.topic, ["partners", partnerId, "shops", "+", "orders", "+"]),
  );
  const shops = new Set(
    eventSubs.map((sub) => {
      const shop = sub.topic.split("/")[3];
      return shop === undefined || shop === "+" || shop === "#" ? "*" : shop;
    }),
  );
  const onlyShop = shops.size === 1 && !shops.has("*") ? [...shops][0] : undefined;
  const coveringCursors = new Set([buildPartnerCursorTopic(partnerId)]);
  if (onlyShop !== undefined) coveringCursors.add(buildShopCursorTopic(partnerId, onlyShop));
  return {
    replaysEvents: eventSubs.length > 0,
    shopId: onlyShop,
    qosFor(topic) {
      let qos: 0 | 1 | 2 = 0;
      for (const sub of eventSubs) if (sub.qos > qos && topicMatchesFilter(sub.topic, topic)) qos = sub.qos;
      return qos;
    },
    statusFilters: durable.filter((sub) =>
      canMatch(sub.topic, ["partners", partnerId, "devices", "+", "status"]),
    ),
    coveringCursors,
  };
};

/**
 * The seq at the start of an event or cursor payload (`{"seq":N,…}`, as the bridge writes both),
 * read without parsing the JSON; undefined for anything else.
 */
export const readLeadingSeq = (payload: Buffer | string): number | undefined => {
  const bytes = typeof payload === "string" ? Buffer.from(payload) : payload;
  // {"seq":
  if (bytes.length < 8 || bytes[0] !== 0x7b || bytes[1] !== 0x22 || bytes[2] !== 0x73) return undefined;
  if (bytes[3] !== 0x65 || bytes[4] !== 0x71 || bytes[5] !== 0x22 || bytes[6] !== 0x3a) return undefined;
  let seq = 0;
  let i = 7;
  for (; i < bytes.length && i < 24; i++) {
    const digit = bytes[i]! - 0x30;
    if (digit < 0 || digit > 9) break;
    seq = seq * 10 + digit;
  }
  return i === 7 ? undefined : seq;
};
