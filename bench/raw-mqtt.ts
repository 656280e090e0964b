/**
 * A bare MQTT 3.1.1 client over a raw socket, for benchmarks: prebuilt
 * frames, no packet objects, PUBACKs batched per turn of the event loop, so
 * the subscribers leave the CPU to the broker under test (what mqtt.js cost
 * a message instead: bench/README.md, the bridge benches' common parts).
 *
 * Enough of the protocol for subscribers and publishers of the benches:
 * CONNECT (user, password, clean or persistent session, keep-alive with PINGREQ), SUBSCRIBE,
 * PUBLISH at QoS 0/1 both ways, PUBACK. No QoS 2, no reconnect.
 */
import net from "node:net";

const u16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const str = (s: string) => {
  const b = Buffer.from(s);
  return Buffer.concat([u16(b.length), b]);
};
const remaining = (n: number) => {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
};
const frame = (first: number, body: Buffer) =>
  Buffer.concat([Buffer.from([first]), remaining(body.length), body]);

export const connectFrame = (
  clientId: string,
  username: string,
  password: string,
  keepaliveS: number,
  clean = true,
) =>
  frame(
    0x10,
    // Flags 0xc2: user name, password, clean session (0xc0: a persistent session).
    Buffer.concat([
      str("MQTT"),
      Buffer.from([4, clean ? 0xc2 : 0xc0]),
      u16(keepaliveS),
      str(clientId),
      str(username),
      str(password),
    ]),
  );
export const subscribeFrame = (messageId: number, filters: string[], qos: number) =>
  frame(
    0x82,
    Buffer.concat([u16(messageId), ...filters.map((f) => Buffer.concat([str(f), Buffer.from([qos])]))]),
  );
export const publishFrame = (topic: string, payload: Buffer, qos: 0 | 1, messageId: number) =>
  frame(0x30 | (qos << 1), Buffer.concat([str(topic), qos ? u16(messageId) : Buffer.alloc(0), payload]));
export const pubackFrame = (messageId: number) =>
  Buffer.from([0x40, 2, (messageId >> 8) & 0xff, messageId & 0xff]);
const PINGREQ = Buffer.from([0xc0, 0]);

type OnPacket = (type: number, flags: number, body: Buffer) => void;

/** Splits a byte stream into MQTT packets. */
export const packetReader = (onPacket: OnPacket) => {
  let buf: Buffer = Buffer.alloc(0);
  return (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    let i = 0;
    for (;;) {
      if (buf.length - i < 2) break;
      let len = 0;
      let mult = 1;
      let j = i + 1;
      let complete = false;
      while (j < buf.length) {
        const b = buf[j++]!;
        len += (b & 0x7f) * mult;
        mult *= 128;
        if (!(b & 0x80)) {
          complete = true;
          break;
        }
      }
      if (!complete || buf.length - j < len) break;
      onPacket(buf[i]! >> 4, buf[i]! & 0x0f, buf.subarray(j, j + len));
      i = j + len;
    }
    buf = buf.subarray(i);
  };
};

/** The topic of a PUBLISH packet's body. */
export const publishTopic = (body: Buffer): string => body.toString("utf8", 2, 2 + body.readUInt16BE(0));
/** The payload of a PUBLISH packet's body. */
export const publishPayload = (body: Buffer, qos: number): Buffer =>
  body.subarray(2 + body.readUInt16BE(0) + (qos > 0 ? 2 : 0));

export interface RawClient {
  socket: net.Socket;
  /** The CONNACK's session-present flag (a persistent session was resumed). */
  sessionPresent: boolean;
  /** Every PUBLISH received (already acknowledged when QoS 1). */
  onPublish: (body: Buffer, qos: number) => void;
  onPuback: () => void;
  /** SUBSCRIBE and wait for its SUBACK; rejects when any filter is refused (0x80). */
  subscribe(filters: string[], qos: number): Promise<void>;
  close(): void;
}

export interface RawClientOptions {
  host?: string;
  port: number;
  clientId: string;
  username: string;
  password: string;
  /** Seconds; a PINGREQ goes out at this interval, as mqtt.js's keep-alive would (default 60). */
  keepaliveS?: number;
  /** CleanSession (default true); false starts or resumes a persistent session. */
  clean?: boolean;
  /** Called with each PUBLISH before its PUBACK is queued (set `onPublish` later for the rest). */
  onPublish?: (body: Buffer, qos: number) => void;
}

export const connectRawClient = (options: RawClientOptions): Promise<RawClient> =>
  new Promise((resolve, reject) => {
    const keepaliveS = options.keepaliveS ?? 60;
    const socket = net.connect(options.port, options.host ?? "127.0.0.1");
    socket.setNoDelay(true);
    let acks: Buffer[] = [];
    let ackScheduled = false;
    const flushAcks = () => {
      ackScheduled = false;
      if (acks.length) socket.write(acks.length === 1 ? acks[0]! : Buffer.concat(acks));
      acks = [];
    };
    let subackWaiter: ((granted: number[]) => void) | undefined;
    let nextMessageId = 1;
    const ping = setInterval(() => socket.write(PINGREQ), keepaliveS * 1000);
    ping.unref();
    socket.once("close", () => clearInterval(ping));
    const client: RawClient = {
      socket,
      sessionPresent: false,
      onPublish: options.onPublish ?? (() => undefined),
      onPuback: () => undefined,
      subscribe: (filters, qos) =>
        new Promise((resolveSub, rejectSub) => {
          subackWaiter = (granted) => {
            subackWaiter = undefined;
            if (granted.includes(0x80)) rejectSub(new Error(`subscription refused: ${filters.join(", ")}`));
            else resolveSub();
          };
          socket.write(subscribeFrame(nextMessageId++, filters, qos));
        }),
      close: () => socket.destroy(),
    };
    socket.on(
      "data",
      packetReader((type, flags, body) => {
        if (type === 3) {
          const qos = (flags >> 1) & 3;
          if (qos > 0) {
            acks.push(pubackFrame(body.readUInt16BE(2 + body.readUInt16BE(0))));
            if (!ackScheduled) {
              ackScheduled = true;
              setImmediate(flushAcks);
            }
          }
          client.onPublish(body, qos);
        } else if (type === 4) client.onPuback();
        else if (type === 9) subackWaiter?.([...body.subarray(2)]);
        else if (type === 2) {
          client.sessionPresent = (body[0]! & 1) === 1;
          if (body[1] !== 0) reject(new Error(`CONNACK ${body[1]}`));
          else resolve(client);
        }
      }),
    );
    socket.once("error", reject);
    socket.write(
      connectFrame(options.clientId, options.username, options.password, keepaliveS, options.clean ?? true),
    );
  });
