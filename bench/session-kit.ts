/**
 * Shared parts of the persistent-session benches (bench/session-*.ts): a
 * persistent session made and left offline, resumed and timed until every
 * event it missed arrived (checked by the seq at the head of each payload,
 * duplicates and order counted), ended, and a QoS 1 publisher for the peers
 * (Mosquitto, bare Aedes) that sends brewcast-shaped events on brewcast's
 * topics. Clients: bench/raw-mqtt.ts (default) or mqtt.js.
 */
import mqtt from "mqtt";
import { readLeadingSeq } from "../src/sessions/replay-plan.ts";
import { sleep } from "./lib/machine.ts";
import { connectRawClient, publishFrame, publishPayload, publishTopic } from "./raw-mqtt.ts";

export type ClientKind = "raw" | "mqttjs";

/** QoS 1 messages the publisher keeps unacknowledged. */
const PUBLISH_WINDOW = 500;

export interface Credential {
  username: string;
  password: string;
}

export interface Resumed {
  sessionPresent: boolean;
  connackMs: number;
  firstMs: number;
  totalMs: number;
  received: number;
  duplicates: number;
  outOfOrder: number;
  payloadBytes: number;
  /** The first event's payload as it came. */
  sample: string;
}

/** Creates a persistent session (QoS 1 on `filter`) and leaves it offline. */
export const createSession = async (port: number, clientId: string, who: Credential, filter: string) => {
  const client = await connectRawClient({ port, clientId, ...who, clean: false, keepaliveS: 600 });
  await client.subscribe([filter], 1);
  client.close();
};

/** Ends a persistent session: a clean login under its id removes it (MQTT-3.1.2-6). */
export const endSession = async (port: number, clientId: string, who: Credential) => {
  const client = await connectRawClient({ port, clientId, ...who, clean: true, keepaliveS: 600 });
  client.close();
};

/**
 * Resumes the session `clientId` and waits until every seq in (from, from + count] arrived;
 * times from the CONNECT. QoS 1 messages are acknowledged as they come (both clients).
 */
export const resume = async (
  kind: ClientKind,
  port: number,
  clientId: string,
  who: Credential,
  from: number,
  count: number,
): Promise<Resumed> => {
  const seen = new Uint8Array(count + 1);
  const r: Resumed = {
    sessionPresent: false,
    connackMs: 0,
    firstMs: 0,
    totalMs: 0,
    received: 0,
    duplicates: 0,
    outOfOrder: 0,
    payloadBytes: 0,
    sample: "",
  };
  let distinct = 0;
  let last = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const t0 = performance.now();
  const onEvent = (payload: Buffer) => {
    const seq = readLeadingSeq(payload);
    if (seq === undefined) return;
    const i = seq - from;
    if (i < 1 || i > count) return;
    if (r.received === 0) {
      r.firstMs = performance.now() - t0;
      r.sample = payload.toString();
    }
    r.received++;
    r.payloadBytes += payload.length;
    if (seen[i]) {
      r.duplicates++;
      return;
    }
    seen[i] = 1;
    if (seq < last) r.outOfOrder++;
    last = seq;
    if (++distinct === count) {
      r.totalMs = performance.now() - t0;
      finish();
    }
  };
  let close: () => void;
  if (kind === "raw") {
    const client = await connectRawClient({
      port,
      clientId,
      ...who,
      clean: false,
      keepaliveS: 600,
      onPublish: (body, qos) => {
        if (publishTopic(body).includes("/orders/")) onEvent(publishPayload(body, qos));
      },
    });
    r.connackMs = performance.now() - t0;
    r.sessionPresent = client.sessionPresent;
    close = () => client.close();
  } else {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      protocolVersion: 4,
      clientId,
      clean: false,
      ...who,
      keepalive: 600,
      reconnectPeriod: 0,
    });
    client.on("message", (topic, payload) => {
      if (topic.includes("/orders/")) onEvent(payload);
    });
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
      client.once("connect", resolve);
      client.once("error", reject);
    });
    r.connackMs = performance.now() - t0;
    r.sessionPresent = connack.sessionPresent;
    close = () => void client.endAsync(true);
  }
  if (!r.sessionPresent) {
    close();
    throw new Error(`${clientId}: sessionPresent=0, nothing to resume`);
  }
  const timeout = setTimeout(finish, Math.max(120_000, count * 2));
  await finished;
  clearTimeout(timeout);
  close();
  if (distinct < count)
    throw new Error(
      `${clientId}: ${distinct} of ${count} events within the timeout (${r.received} received)`,
    );
  return r;
};

/**
 * Publishes events (from, from + count] at QoS 1, PUBLISH_WINDOW unacknowledged at most, each
 * `template` (an event's JSON, `{"seq":N,…}`) with its seq set, on the topic brewcast would use:
 * orders of `eventsPerOrder` events in `shops` shops `shop-01`…, as bench/seed-log.ts makes them.
 */
export const publishEvents = async (
  port: number,
  template: string,
  from: number,
  count: number,
  shape: { partnerId: string; shops: number; eventsPerOrder: number },
) => {
  const client = await connectRawClient({
    port,
    clientId: `replay-publisher-${from}`,
    username: "",
    password: "",
    keepaliveS: 600,
  });
  const rest = template.slice(template.indexOf(",")); // after {"seq":N
  let acked = 0;
  let sent = 0;
  let wake: (() => void) | undefined;
  client.onPuback = () => {
    acked++;
    wake?.();
  };
  while (sent < count) {
    const batch: Buffer[] = [];
    while (sent < count && sent - acked < PUBLISH_WINDOW) {
      sent++;
      const seq = from + sent;
      const o = Math.floor((seq - 1) / shape.eventsPerOrder);
      const topic = `partners/${shape.partnerId}/shops/shop-${String((o % shape.shops) + 1).padStart(2, "0")}/orders/${(seq - 1) % shape.eventsPerOrder === 0 ? "created" : "status_changed"}`;
      batch.push(publishFrame(topic, Buffer.from(`{"seq":${seq}${rest}`), 1, ((sent - 1) % 65_535) + 1));
    }
    if (batch.length > 0) client.socket.write(Buffer.concat(batch));
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
    wake = undefined;
  }
  while (acked < count) await sleep(5);
  client.close();
};
