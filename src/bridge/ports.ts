/**
 * What the MQTT channel needs from a broker, and nothing more: a publisher.
 * The embedded broker (src/broker/) and an MQTT client (mqtt-publisher.ts)
 * implement it; the channel imports no MQTT library.
 */

export interface OutgoingMessage {
  topic: string;
  payload: string;
  qos: 0 | 1 | 2;
  retain: boolean;
}

export interface Publisher {
  /**
   * Resolves once the broker accepted the message (PUBACK/PUBCOMP, or Aedes's callback in-process).
   * Messages of one partner reach subscribers in the order `publish` was called, accepted or not
   * yet: the delivery core hands a partner's next batch over while the last is in flight.
   */
  publish(message: OutgoingMessage): Promise<void>;
}
