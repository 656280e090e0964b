/**
 * A Publisher over MQTT 3.1.1, for a bridge running as its own process: to a
 * brewcast broker cluster, or to any MQTT 3.1.1 broker (Mosquitto, EMQX,
 * HiveMQ). A publish while disconnected fails at once instead of queueing,
 * so the partner backs off and the durable cursor stays where it is.
 */
import { randomBytes } from "node:crypto";
import mqtt, { type MqttClient } from "mqtt";
import type { Logger } from "pino";
import { redactUrl } from "../log.ts";
import type { OutgoingMessage, Publisher } from "./ports.ts";

export interface MqttPublisher extends Publisher {
  readonly connected: boolean;
  close(): Promise<void>;
}

export interface MqttPublisherOptions {
  url: string;
  log: Logger;
  username?: string;
  password?: string;
  clientId?: string;
}

export const createMqttPublisher = async (options: MqttPublisherOptions): Promise<MqttPublisher> => {
  const client: MqttClient = mqtt.connect(options.url, {
    protocolVersion: 4,
    clientId: options.clientId ?? `brewcast-bridge-${randomBytes(6).toString("hex")}`,
    clean: true,
    reconnectPeriod: 1_000,
    connectTimeout: 10_000,
    // A message must leave now or fail: the log, not an in-memory queue, is the buffer.
    queueQoSZero: false,
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
  });
  client.on("connect", () =>
    options.log.info({ url: redactUrl(options.url) }, "bridge connected to MQTT broker"),
  );
  client.on("offline", () =>
    options.log.warn({ url: redactUrl(options.url) }, "bridge lost its MQTT broker; reconnecting"),
  );
  client.on("error", (error) => options.log.warn({ err: error }, "bridge MQTT client error"));

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`BREWCAST_MQTT_URL=${redactUrl(options.url)}: no CONNACK within 10 s`)),
      10_000,
    );
    client.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
  }).catch(async (error) => {
    await client.endAsync(true);
    throw error;
  });

  return {
    get connected() {
      return client.connected;
    },
    async publish(message: OutgoingMessage) {
      if (!client.connected) throw new Error("not connected to the MQTT broker");
      await client.publishAsync(message.topic, message.payload, { qos: message.qos, retain: message.retain });
    },
    async close() {
      await client.endAsync();
    },
  };
};
