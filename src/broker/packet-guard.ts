/**
 * Maximum packet size, on every transport. Aedes has no such option (a
 * 20 MiB PUBLISH goes through), so this reads the MQTT fixed header
 * [MQTT-2.2] of every packet in the raw byte stream BEFORE Aedes's parser
 * buffers it, and closes the connection as soon as a header announces a
 * packet over the limit (or a malformed Remaining Length, [MQTT-2.2.3]).
 * Memory held per connection stays bounded by the limit.
 *
 * It also reads every UTF-8 string field of each decoded packet (client id,
 * username, will topic, topics, filters): one that was not well-formed UTF-8
 * (the decoder turns such bytes into U+FFFD) or holds U+0000 closes the
 * connection before Aedes sees the packet [MQTT-1.5.3-1], [MQTT-1.5.3-2].
 */

export type GuardVerdict = "ok" | "oversize" | "malformed" | "invalid_string";

/**
 * A string an MQTT client sent is well formed: no U+FFFD (what ill-formed UTF-8 decodes to;
 * no topic of the contract holds it) and no U+0000.
 */
export const isWellFormedMqttString = (value: string): boolean =>
  !value.includes("\uFFFD") && !value.includes("\u0000");

/** The UTF-8 string fields of a decoded packet (mqtt-packet 9), the ones [MQTT-1.5.3] governs. */
interface DecodedPacket {
  cmd: string;
  clientId?: string;
  username?: string;
  will?: { topic?: string } | null;
  topic?: string;
  subscriptions?: { topic: string }[];
  unsubscriptions?: string[];
}

const stringFieldsAreWellFormed = (packet: DecodedPacket): boolean => {
  const ok = (value: string | undefined) => value === undefined || isWellFormedMqttString(value);
  switch (packet.cmd) {
    case "connect":
      return ok(packet.clientId) && ok(packet.username) && ok(packet.will?.topic);
    case "publish":
      return ok(packet.topic);
    case "subscribe":
      return (packet.subscriptions ?? []).every((sub) => ok(sub.topic));
    case "unsubscribe":
      return (packet.unsubscriptions ?? []).every(ok);
    default:
      return true;
  }
};

/** A streaming reader of MQTT fixed headers: feed it raw chunks, it says whether they may pass. */
export interface PacketSizeGuard {
  feed(chunk: Buffer): GuardVerdict;
}

export const createPacketSizeGuard = (maxBytes: number): PacketSizeGuard => {
  // States: 0 = expecting a packet type byte; 1 = reading Remaining Length; 2 = skipping the body.
  let state = 0;
  let remaining = 0;
  let multiplier = 1;
  let lengthBytes = 0;
  let failed: GuardVerdict = "ok";
  return {
    feed(chunk) {
      if (failed !== "ok") return failed;
      let i = 0;
      while (i < chunk.length) {
        if (state === 2) {
          const skip = Math.min(remaining, chunk.length - i);
          remaining -= skip;
          i += skip;
          if (remaining === 0) state = 0;
          continue;
        }
        const byte = chunk[i++]!;
        if (state === 0) {
          state = 1;
          remaining = 0;
          multiplier = 1;
          lengthBytes = 0;
          continue;
        }
        // state 1: variable-length Remaining Length, at most four bytes.
        remaining += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        lengthBytes++;
        if (byte & 0x80) {
          if (lengthBytes >= 4) {
            failed = "malformed";
            return failed;
          }
          continue;
        }
        if (1 + lengthBytes + remaining > maxBytes) {
          failed = "oversize";
          return failed;
        }
        state = remaining === 0 ? 0 : 2;
      }
      return "ok";
    },
  };
};

/** The part of an Aedes client this module touches (Aedes 1.2.0, lib/client.js). */
interface GuardedClient {
  _parser: { parse(buf: Buffer): unknown; emit(event: string, ...args: unknown[]): boolean };
  conn: { destroy(error?: Error): void };
}

/**
 * Puts the guard in front of an Aedes client's parser. Aedes 1.2.0 reads
 * every byte with `conn.read()` and hands it to `client._parser.parse`;
 * intercepting there covers TCP, TLS and WebSocket alike with no extra
 * stream per connection; the parser's `packet` event is where each decoded
 * packet leaves for Aedes. (Pinned: aedes is "1.2.0" exactly; the oversize
 * and UTF-8 tests fail if these internals change.)
 */
export const guardClientParser = (
  client: unknown,
  maxBytes: number,
  onViolation: (verdict: Exclude<GuardVerdict, "ok">) => void,
): void => {
  const target = client as GuardedClient;
  const parser = target._parser;
  if (!parser || typeof parser.parse !== "function") {
    throw new Error("aedes internals changed: client._parser.parse is missing (packet size guard)");
  }
  const guard = createPacketSizeGuard(maxBytes);
  const parse = parser.parse.bind(parser);
  const emit = parser.emit.bind(parser);
  let closed = false;
  const close = (verdict: Exclude<GuardVerdict, "ok">) => {
    closed = true;
    onViolation(verdict);
    target.conn.destroy();
  };
  parser.parse = (buf: Buffer) => {
    if (closed) return undefined;
    const verdict = guard.feed(buf);
    if (verdict !== "ok") {
      close(verdict);
      return undefined;
    }
    return parse(buf);
  };
  parser.emit = (event: string, ...args: unknown[]) => {
    if (closed) return false;
    if (event === "packet" && !stringFieldsAreWellFormed(args[0] as DecodedPacket)) {
      close("invalid_string");
      return false;
    }
    return emit(event, ...args);
  };
};
