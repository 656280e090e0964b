/**
 * The MQTT channel of the delivery core: each event to
 * `partners/{p}/shops/{s}/orders/{kind}` at the partner's QoS, the position
 * as the retained cursor topics (`partners/{p}/cursor` and each shop's), the
 * ladder state as the retained `partners/{p}/status`.
 *
 * Imports domain, the delivery core's channel interface and this folder's
 * publisher port; never a broker or an MQTT library.
 */

import type { Channel } from "../delivery/channel.ts";
import type { PartnerCursors, ScopeCursor } from "../domain/delivery.ts";
import { type Cursor, EVENT_KIND, type OrderEvent, type PartnerStatus } from "../domain/events.ts";
import {
  buildOrderEventTopic,
  buildPartnerCursorTopic,
  buildPartnerStatusTopic,
  buildShopCursorTopic,
} from "../domain/topics.ts";
import type { OutgoingMessage, Publisher } from "./ports.ts";

/**
 * Hands every message to the publisher at once (it keeps their order) and resolves when the
 * broker accepted them all: waiting for each before the next would cost a round trip per
 * message, and a batch is accepted or retried as a whole anyway.
 */
const publishAll = (publisher: Publisher, messages: OutgoingMessage[]): Promise<void> => {
  if (messages.length === 0) return Promise.resolve();
  if (messages.length === 1) return publisher.publish(messages[0]!);
  return Promise.all(messages.map((message) => publisher.publish(message))).then(() => undefined);
};

/** `epoch` names the event log in every cursor message. */
export const createMqttChannel = (publisher: Publisher, epoch: string): Channel => ({
  name: "mqtt",
  deliver(partner: Readonly<PartnerCursors>, events: readonly OrderEvent[]) {
    const { partnerId, qos } = partner;
    return publishAll(
      publisher,
      events.map((event) => ({
        topic: buildOrderEventTopic(partnerId, event.shop_id, EVENT_KIND[event.type]),
        payload: JSON.stringify(event),
        qos,
        retain: false,
      })),
    );
  },
  announcePosition(partner: Readonly<PartnerCursors>, shopIds: readonly string[]) {
    const { partnerId, published, shops } = partner;
    const publishedAt = new Date().toISOString();
    const payload = (cursor: ScopeCursor): string =>
      JSON.stringify({
        seq: cursor.seq,
        epoch,
        occurred_at: cursor.occurredAt,
        published_at: publishedAt,
      } satisfies Cursor);
    return publishAll(publisher, [
      { topic: buildPartnerCursorTopic(partnerId), payload: payload(published), qos: 1, retain: true },
      ...shopIds.map((shopId) => ({
        topic: buildShopCursorTopic(partnerId, shopId),
        payload: payload(shops.get(shopId) ?? { seq: 0, occurredAt: null }),
        qos: 1 as const,
        retain: true,
      })),
    ]);
  },
  announceState(partner: Readonly<PartnerCursors>, since: string) {
    return publishAll(publisher, [
      {
        topic: buildPartnerStatusTopic(partner.partnerId),
        payload: JSON.stringify({ state: partner.state, since } satisfies PartnerStatus),
        qos: 1,
        retain: true,
      },
    ]);
  },
});
