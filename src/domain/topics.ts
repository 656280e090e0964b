/**
 * The MQTT topic grammar of the public contract, and the access decisions
 * built on it. Pure: no I/O, no Aedes; the broker and the bridge import it.
 *
 *   partners/{p}/shops/{s}/orders/{kind}   one event (bridge only)
 *   partners/{p}/cursor                    retained partner cursor (bridge only)
 *   partners/{p}/shops/{s}/cursor          retained shop cursor (bridge only)
 *   partners/{p}/status                    retained ladder state of the partner (bridge only);
 *                                          non-retained webhook endpoint status announcements
 *   partners/{p}/devices/{cred}/status     a client's own presence (the only client publish)
 *
 * Invariant: a filter is allowed only if EVERY topic it could match lies
 * inside the principal's scope (its partner, or its shop for a device).
 */
import { CREDENTIAL_ID_PATTERN, SLUG_PATTERN } from "./ids.ts";
import type { Principal } from "./partners.ts";
import { scopeOf } from "./scope.ts";

export const ORDER_EVENT_KINDS = ["created", "status_changed"] as const;
export type OrderEventKind = (typeof ORDER_EVENT_KINDS)[number];

const assertSlug = (what: string, value: string): string => {
  if (!SLUG_PATTERN.test(value))
    throw new Error(`${what} must match [a-z0-9-]{1,64}: ${JSON.stringify(value)}`);
  return value;
};

export const buildOrderEventTopic = (partnerId: string, shopId: string, kind: OrderEventKind): string =>
  `partners/${assertSlug("partner id", partnerId)}/shops/${assertSlug("shop id", shopId)}/orders/${kind}`;

export const buildPartnerCursorTopic = (partnerId: string): string =>
  `partners/${assertSlug("partner id", partnerId)}/cursor`;

/** Retained `{ state, since }` of the partner on the degradation ladder (issue 6): poll_only means "poll REST". */
export const buildPartnerStatusTopic = (partnerId: string): string =>
  `partners/${assertSlug("partner id", partnerId)}/status`;

export const buildShopCursorTopic = (partnerId: string, shopId: string): string =>
  `partners/${assertSlug("partner id", partnerId)}/shops/${assertSlug("shop id", shopId)}/cursor`;

export const buildDeviceStatusTopic = (partnerId: string, credentialId: string): string => {
  if (!CREDENTIAL_ID_PATTERN.test(credentialId)) throw new Error(`not a credential id: ${credentialId}`);
  return `partners/${assertSlug("partner id", partnerId)}/devices/${credentialId}/status`;
};

export type ParsedTopic =
  | { type: "order_event"; partnerId: string; shopId: string; kind: OrderEventKind }
  | { type: "partner_cursor"; partnerId: string }
  | { type: "partner_status"; partnerId: string }
  | { type: "shop_cursor"; partnerId: string; shopId: string }
  | { type: "device_status"; partnerId: string; credentialId: string };

const isSlug = (value: string | undefined): value is string =>
  value !== undefined && SLUG_PATTERN.test(value);

/** Parses a concrete topic name (no wildcards) of the contract; null for anything else. */
export const parseTopic = (topic: string): ParsedTopic | null => {
  const levels = topic.split("/");
  const [root, partnerId, a, b, c, d] = levels;
  if (root !== "partners" || !isSlug(partnerId)) return null;
  if (levels.length === 3 && a === "cursor") return { type: "partner_cursor", partnerId };
  if (levels.length === 3 && a === "status") return { type: "partner_status", partnerId };
  if (a === "shops" && isSlug(b)) {
    if (levels.length === 5 && c === "cursor") return { type: "shop_cursor", partnerId, shopId: b };
    if (levels.length === 6 && c === "orders" && (ORDER_EVENT_KINDS as readonly string[]).includes(d!)) {
      return { type: "order_event", partnerId, shopId: b, kind: d as OrderEventKind };
    }
    return null;
  }
  if (levels.length === 5 && a === "devices" && c === "status" && CREDENTIAL_ID_PATTERN.test(b ?? "")) {
    return { type: "device_status", partnerId, credentialId: b! };
  }
  return null;
};

/**
 * MQTT 3.1.1 filter matching (section 4.7): `+` one level, `#` the rest
 * including the parent level. Filters starting with a wildcard never match
 * `$`-topics [MQTT-4.7.2-1].
 */
export const topicMatchesFilter = (filter: string, topic: string): boolean => {
  if (topic.startsWith("$") && (filter.startsWith("+") || filter.startsWith("#"))) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === "#") return true;
    if (i >= t.length) return false;
    if (level !== "+" && level !== t[i]) return false;
  }
  return f.length === t.length;
};

/** A syntactically valid MQTT 3.1.1 subscription filter ([MQTT-4.7.1-2], [MQTT-4.7.1-3]). */
export const isValidFilter = (filter: string): boolean => {
  if (filter.length === 0 || filter.includes("\u0000")) return false;
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) return false;
    if (level.includes("+") && level !== "+") return false;
  }
  return true;
};

/** The levels every topic a principal may receive starts with: its scope (`scopeOf`), its partner or its shop. */
export const subscribeScope = (principal: Principal): string[] => {
  const { partnerId, shopId } = scopeOf(principal);
  return shopId === null ? ["partners", partnerId] : ["partners", partnerId, "shops", shopId];
};

/**
 * May this principal subscribe to this filter? Only when the filter's first
 * levels equal its scope literally (no wildcard there) and it has at least one
 * level below the scope, so it cannot match outside it. `partners/p/#` is
 * refused for a device (it would match other shops); `#`, `+/…`,
 * `partners/+/…` and `$SYS/…` are refused for everyone.
 */
export const canSubscribe = (principal: Principal, filter: string): boolean => {
  if (!isValidFilter(filter)) return false;
  const scope = subscribeScope(principal);
  const levels = filter.split("/");
  // The bare scope (`partners/p`) is no topic of the contract: require at least one level below it.
  if (levels.length <= scope.length) return false;
  for (let i = 0; i < scope.length; i++) if (levels[i] !== scope[i]) return false;
  return true;
};

/** Clients may publish only their own presence: `partners/{p}/devices/{own credential}/status`. */
export const canPublish = (principal: Principal, topic: string): boolean => {
  const parsed = parseTopic(topic);
  return (
    parsed?.type === "device_status" &&
    parsed.partnerId === principal.partnerId &&
    parsed.credentialId === principal.credentialId
  );
};

/** Topics only the bridge's internal identity may publish to: events, cursors, partner status. */
export const isBridgeTopic = (topic: string): boolean => {
  const parsed = parseTopic(topic);
  return parsed !== null && parsed.type !== "device_status";
};
