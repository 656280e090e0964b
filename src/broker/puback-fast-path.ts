/**
 * PUBACKs of persistent sessions, read in bulk off the raw byte stream
 * before Aedes's parser. A replay of 100,000 events brings back 100,000
 * PUBACKs; through Aedes each one is a parsed packet object (mqtt-packet,
 * `bl`, `debug` calls), a handler, a promise of the persistence and an
 * `ack` event: a sixth of a replay's CPU. Here a run of 4-byte MQTT 3.1.1
 * PUBACKs [MQTT-3.4] (`0x40 0x02 id id`) at the start of a chunk is handed
 * to the sessions as packet ids at once; the rest of the chunk, and every
 * chunk that does not start at a packet boundary, goes to the parser as
 * before. Nothing brewcast does listens to Aedes's `ack` event (the
 * persistence's `outgoingClearMessageId` returns no packet for it anyway),
 * and the keepalive is refreshed as Aedes does for every packet.
 *
 * Installed under the packet guard (packet-guard.ts), which still reads
 * every byte. Aedes internals used (aedes 1.2.0, pinned exactly; the test
 * test/sessions/bulk-acknowledgements.test.ts fails if they change): the client's
 * `_parser` (mqtt-packet's Parser: `_list` its unparsed bytes, `_stateCounter`
 * 0 between packets), `connackSent`, `_keepaliveInterval`/`_keepaliveTimer`.
 */

const PUBACK = 0x40;

/** The part of an Aedes 1.2 client this module touches (lib/client.js, lib/handlers/connect.js). */
interface AckingClient {
  connackSent: boolean;
  _keepaliveInterval: number;
  _keepaliveTimer: { refresh(): unknown } | null;
  _parser: {
    parse(buf: Buffer): unknown;
    _list: { length: number };
    _stateCounter: number;
  };
}

/** Packet ids of the whole PUBACKs at the start of `chunk`, and the bytes they take. */
export const leadingPubacks = (chunk: Buffer): { ids: number[]; bytes: number } => {
  const ids: number[] = [];
  let at = 0;
  while (at + 4 <= chunk.length && chunk[at] === PUBACK && chunk[at + 1] === 2) {
    ids.push((chunk[at + 2]! << 8) | chunk[at + 3]!);
    at += 4;
  }
  return { ids, bytes: at };
};

/**
 * Reads leading PUBACKs of `client`'s chunks itself. `acknowledge` takes them (the session's ack
 * tracker) and says false when the client has no persistent session: then they go to Aedes.
 */
export const installPubackFastPath = (
  client: unknown,
  acknowledge: (messageIds: number[]) => boolean,
): void => {
  const target = client as AckingClient;
  const parser = target._parser;
  if (
    !parser ||
    typeof parser.parse !== "function" ||
    typeof parser._stateCounter !== "number" ||
    typeof parser._list?.length !== "number"
  ) {
    throw new Error("aedes internals changed: client._parser is not mqtt-packet's (PUBACK fast path)");
  }
  const parse = parser.parse.bind(parser);
  parser.parse = (buf: Buffer) => {
    // Only between packets (nothing of a packet buffered) and after CONNACK (before it Aedes
    // queues packets and a PUBACK is a protocol error it must see).
    if (!target.connackSent || parser._stateCounter !== 0 || parser._list.length !== 0 || buf[0] !== PUBACK)
      return parse(buf);
    const { ids, bytes } = leadingPubacks(buf);
    if (bytes === 0 || !acknowledge(ids)) return parse(buf);
    if (target._keepaliveInterval > 0) target._keepaliveTimer?.refresh();
    return bytes === buf.length ? 0 : parse(buf.subarray(bytes));
  };
};
