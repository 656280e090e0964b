/**
 * MQTT 3.1.1 packets built byte by byte, for what no well-behaved client
 * sends: an empty client id with CleanSession=0, ill-formed UTF-8 in a topic
 * or filter, a socket that never sends CONNECT. Strings are given as bytes.
 */
import net from "node:net";

const varint = (n: number): Buffer => {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
};

const field = (value: Buffer | string): Buffer => {
  const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : value;
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bytes.length);
  return Buffer.concat([length, bytes]);
};

const packet = (firstByte: number, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from([firstByte]), varint(body.length), body]);

export const connectPacket = (options: {
  clientId: Buffer | string;
  clean: boolean;
  username?: Buffer | string;
  password?: string;
}): Buffer => {
  let flags = options.clean ? 0x02 : 0;
  if (options.username !== undefined) flags |= 0x80;
  if (options.password !== undefined) flags |= 0x40;
  const header = Buffer.concat([field("MQTT"), Buffer.from([4, flags, 0, 60])]);
  const payload = [field(options.clientId)];
  if (options.username !== undefined) payload.push(field(options.username));
  if (options.password !== undefined) payload.push(field(options.password));
  return packet(0x10, Buffer.concat([header, ...payload]));
};

export const subscribePacket = (messageId: number, filter: Buffer | string, qos: 0 | 1 | 2): Buffer => {
  const id = Buffer.alloc(2);
  id.writeUInt16BE(messageId);
  return packet(0x82, Buffer.concat([id, field(filter), Buffer.from([qos])]));
};

/** A QoS 0 PUBLISH. */
export const publishPacket = (topic: Buffer | string, payload: string): Buffer =>
  packet(0x30, Buffer.concat([field(topic), Buffer.from(payload)]));

/** A TCP connection to the broker, optionally from a given local (loopback) address. */
export const rawSocket = (port: number, localAddress?: string): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", ...(localAddress ? { localAddress } : {}) }, () =>
      resolve(socket),
    );
    socket.once("error", reject);
  });

/** Resolves with every byte the socket received once it closes. */
export const readUntilClosed = (socket: net.Socket): Promise<Buffer> =>
  new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", () => undefined);
    if (socket.closed) resolve(Buffer.alloc(0));
    else socket.once("close", () => resolve(Buffer.concat(chunks)));
  });

/** Resolves with the first `n` bytes the socket receives. */
export const readBytes = (socket: net.Socket, n: number): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= n) {
        socket.off("data", onData);
        resolve(got.subarray(0, n));
      }
    };
    socket.on("data", onData);
    socket.once("close", () => reject(new Error(`closed after ${got.length} of ${n} bytes`)));
  });

export interface RawPublish {
  topic: string;
  payload: Buffer;
  qos: number;
  dup: boolean;
  retain: boolean;
  messageId: number | undefined;
}

/**
 * Reads the packets a broker sends on `socket` and hands each PUBLISH to `onPublish`, acknowledging
 * nothing: a client that takes messages and never answers. Returns the types of every packet read
 * (2 CONNACK, 3 PUBLISH, 9 SUBACK…), in order.
 */
export const onPublishes = (socket: net.Socket, onPublish: (publish: RawPublish) => void): number[] => {
  const types: number[] = [];
  let buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      let length = 0;
      let multiplier = 1;
      let i = 1;
      for (; i < buffer.length && i <= 4; i++) {
        length += (buffer[i]! & 0x7f) * multiplier;
        multiplier *= 128;
        if ((buffer[i]! & 0x80) === 0) break;
      }
      if (i >= buffer.length || buffer.length < i + 1 + length) return;
      const first = buffer[0]!;
      const body = buffer.subarray(i + 1, i + 1 + length);
      buffer = buffer.subarray(i + 1 + length);
      types.push(first >> 4);
      if (first >> 4 !== 3) continue;
      const qos = (first >> 1) & 3;
      const topicLength = body.readUInt16BE(0);
      const topic = body.subarray(2, 2 + topicLength).toString("utf8");
      const messageId = qos > 0 ? body.readUInt16BE(2 + topicLength) : undefined;
      onPublish({
        topic,
        payload: body.subarray(2 + topicLength + (qos > 0 ? 2 : 0)),
        qos,
        dup: (first & 0x08) !== 0,
        retain: (first & 0x01) !== 0,
        messageId,
      });
    }
  });
  return types;
};
