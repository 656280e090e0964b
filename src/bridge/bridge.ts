/**
 * The bridge: the delivery core (src/delivery/) with the MQTT channel,
 * mirroring the event log to MQTT topics per partner in seq order, at least
 * once, never skipping. Everything but the topics and payloads (leadership,
 * the ready queue, in-order settlement, cursor commits, back-off, the
 * ladder's rate) is the core's, shared with every other channel.
 *
 * Imports domain, the delivery core and this folder only.
 */
import { DeliveryCore, type DeliveryOptions, type DeliveryRole } from "../delivery/delivery-core.ts";
import { createMqttChannel } from "./mqtt-channel.ts";
import type { Publisher } from "./ports.ts";

export type BridgeRole = DeliveryRole;

export interface BridgeOptions extends Omit<DeliveryOptions, "channel"> {
  /** The broker the events are published to (the embedded one, or an MQTT client). */
  publisher: Publisher;
}

export class Bridge extends DeliveryCore {
  constructor({ publisher, ...options }: BridgeOptions) {
    super({ ...options, channel: createMqttChannel(publisher, options.source.epoch) });
  }
}
