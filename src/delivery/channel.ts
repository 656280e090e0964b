/**
 * A channel: one way of handing a partner's events to the outside world
 * (MQTT today, src/bridge/mqtt-channel.ts; webhooks and the SSE stream next).
 * The delivery core decides what to hand over and when; a channel only says
 * when the outside world accepted it.
 *
 * Contract, per partner:
 * - Calls come in seq order and each later call's messages must reach the
 *   outside world after the earlier ones', accepted or not yet: the core
 *   hands the next batch over while the last is in flight.
 * - A returned promise resolves once everything of that call was accepted
 *   (a broker's PUBACK, a 2xx), and rejects otherwise; a call that takes
 *   longer than the core's deadline counts as rejected. The core moves the
 *   partner's position only past accepted calls, in order.
 *
 * Imports domain types only.
 */
import type { PartnerCursors } from "../domain/delivery.ts";
import type { OrderEvent } from "../domain/events.ts";

export interface Channel {
  /** Names the channel in errors and logs (`mqtt`, `webhook`). */
  readonly name: string;
  /** The partner's `events`, in seq order (its position is `partner.published`, before them). */
  deliver(partner: Readonly<PartnerCursors>, events: readonly OrderEvent[]): Promise<void>;
  /**
   * The position reached: the partner's cursor and those of `shopIds` (MQTT's retained cursor
   * topics). Called at most once a second per partner while events flow, and for every shop at
   * each watermark interval. A channel with nothing to announce resolves at once.
   */
  announcePosition(partner: Readonly<PartnerCursors>, shopIds: readonly string[]): Promise<void>;
  /** The partner's state on the degradation ladder, in that state `since` (RFC 3339). */
  announceState(partner: Readonly<PartnerCursors>, since: string): Promise<void>;
}
