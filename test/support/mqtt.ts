/**
 * MQTT clients as a partner runs them: mqtt.js with MQTT 3.1.1 and no
 * reconnect, logging in with a credential, and what a test reads from one
 * (the CONNACK code of a refusal, the granted QoS, the messages, the close).
 */
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";

export type ConnackError = Error & { code?: number };

/** Connects with mqtt.js (MQTT 3.1.1, no reconnect); rejects with the CONNACK code on refusal. */
export const connect = (
  url: string,
  options: IClientOptions = {},
  /** Called before CONNECT is sent: attach listeners that must not miss a queued message. */
  prepare?: (client: MqttClient) => void,
): Promise<MqttClient> =>
  new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      ...options,
    });
    prepare?.(client);
    const onError = (error: ConnackError) => {
      client.end(true);
      reject(error);
    };
    client.once("error", onError);
    client.once("connect", () => {
      client.off("error", onError);
      client.on("error", () => undefined);
      resolve(client);
    });
    client.once("close", () => reject(new Error("closed before CONNACK")));
  });

export const login = (
  url: string,
  cred: { id: string; secret: string },
  options: IClientOptions = {},
  prepare?: (client: MqttClient) => void,
) => connect(url, { username: cred.id, password: cred.secret, ...options }, prepare);

/** The CONNACK return code of a refused login. */
export const connackCode = async (url: string, options: IClientOptions): Promise<number | string> => {
  try {
    const client = await connect(url, options);
    client.end(true);
    return 0;
  } catch (error) {
    return (error as ConnackError).code ?? (error as Error).message;
  }
};

/** Resolves with the granted QoS list (128 = refused). */
export const subscribeGranted = async (
  client: MqttClient,
  filter: string,
  qos: 0 | 1 | 2 = 1,
): Promise<number> => {
  try {
    const granted = await client.subscribeAsync(filter, { qos });
    return granted[0]!.qos;
  } catch (error) {
    const granted = (error as { packet?: { granted?: number[] } }).packet?.granted;
    if (granted) return granted[0]!;
    throw error;
  }
};

export interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

/** Collects messages; `waitFor(n)` resolves once n arrived. */
export const collect = (client: MqttClient) => {
  const messages: Received[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  client.on("message", (topic, payload, packet) => {
    messages.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain });
    for (const w of [...waiters]) {
      if (messages.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  return {
    messages,
    waitFor: (n: number) =>
      messages.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
  };
};

/** Resolves when the client's connection closes. */
export const closed = (client: MqttClient): Promise<void> =>
  client.connected ? new Promise((resolve) => client.once("close", () => resolve())) : Promise.resolve();
