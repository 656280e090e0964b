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
