/**
 * A replay's packets, encoded straight into the buffer that is written to
 * the connection: MQTT 3.1.1 PUBLISH [MQTT-3.3] and PUBREL [MQTT-3.6]
 * frames, many per socket write. An event's JSON text is written once,
 * into its place in the batch (no Buffer of its own, no frame of its own,
 * no concatenation); a topic's bytes are encoded once per replay by the
 * caller (`topicBytes`).
 *
 * `write` is synchronous, so whatever Aedes writes after it (a live
 * delivery once the replay is done) follows it on the stream.
 *
 * May import: node.
 */
import type { Writable } from "node:stream";

/** A replay's packets leave in writes of about this many bytes. */
export const WRITE_BYTES = 64 * 1024;

const PUBLISH = 0x30;
const DUP = 0x08;
const RETAIN = 0x01;
const PUBREL = 0x62; // type 6, reserved flags 0010 [MQTT-3.6.1-1]

/** Bytes of an MQTT Remaining Length [MQTT-2.2.3]. */
const remainingLengthBytes = (length: number): number =>
  length < 128 ? 1 : length < 16_384 ? 2 : length < 2_097_152 ? 3 : 4;

export const topicBytes = (topic: string): Buffer => Buffer.from(topic, "utf8");

export interface PublishFields {
  /** The topic, UTF-8 (`topicBytes`). */
  topic: Buffer;
  /** Event JSON text, or a payload as it came. */
  payload: string | Buffer;
  qos: 0 | 1 | 2;
  dup: boolean;
  retain: boolean;
  /** Required for QoS 1 and 2. */
  messageId: number | undefined;
}

export interface FrameBatch {
  publish(fields: PublishFields): void;
  pubrel(messageId: number): void;
  /** Enough is batched for a write. */
  readonly full: boolean;
  /** Writes what is batched, synchronously. */
  write(): void;
  /** Writes what is batched, then waits while the connection is full (a stuck reader is dropped). */
  flush(): Promise<void>;
}

export const createFrameBatch = (conn: Writable, drainTimeoutMs: number): FrameBatch => {
  let buf = Buffer.allocUnsafe(WRITE_BYTES * 2);
  let at = 0;
  let blocked = false;

  const write = (): void => {
    if (at === 0) return;
    // The socket keeps what it was given until it is sent: the next batch gets a buffer of its own.
    const out = buf.subarray(0, at);
    buf = Buffer.allocUnsafe(Math.max(WRITE_BYTES * 2, buf.length));
    at = 0;
    if (!conn.destroyed && !conn.write(out)) blocked = true;
  };
  /** Room for `bytes` more: what is batched is written first when they would not fit. */
  const reserve = (bytes: number): void => {
    if (at + bytes <= buf.length) return;
    write();
    if (bytes > buf.length) buf = Buffer.allocUnsafe(bytes);
  };

  return {
    publish({ topic, payload, qos, dup, retain, messageId }) {
      const payloadBytes = typeof payload === "string" ? Buffer.byteLength(payload, "utf8") : payload.length;
      const remaining = 2 + topic.length + (qos > 0 ? 2 : 0) + payloadBytes;
      reserve(1 + remainingLengthBytes(remaining) + remaining);
      buf[at++] = PUBLISH | (dup ? DUP : 0) | (qos << 1) | (retain ? RETAIN : 0);
      let length = remaining;
      do {
        let byte = length % 128;
        length = Math.floor(length / 128);
        if (length > 0) byte |= 0x80;
        buf[at++] = byte;
      } while (length > 0);
      buf[at++] = topic.length >> 8;
      buf[at++] = topic.length & 0xff;
      at += topic.copy(buf, at);
      if (qos > 0) {
        buf[at++] = messageId! >> 8;
        buf[at++] = messageId! & 0xff;
      }
      at += typeof payload === "string" ? buf.write(payload, at, "utf8") : payload.copy(buf, at);
    },
    pubrel(messageId) {
      reserve(4);
      buf[at++] = PUBREL;
      buf[at++] = 2;
      buf[at++] = messageId >> 8;
      buf[at++] = messageId & 0xff;
    },
    get full() {
      return at >= WRITE_BYTES;
    },
    write,
    async flush() {
      write();
      if (!blocked || conn.destroyed) return;
      blocked = false;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          conn.off("drain", done);
          conn.off("close", done);
          resolve();
        };
        const timer = setTimeout(() => {
          conn.destroy(new Error("drain timeout"));
          done();
        }, drainTimeoutMs);
        conn.once("drain", done);
        conn.once("close", done);
      });
    },
  };
};
