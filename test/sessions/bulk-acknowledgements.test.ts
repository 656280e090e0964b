/**
 * The replay's shortcuts through Aedes internals, pinned by behaviour on the
 * wire (aedes is pinned to 1.2.0; these fail if an upgrade changes what
 * they rely on):
 * - PUBACKs of a persistent session are read in bulk before Aedes's parser
 *   (src/broker/puback-fast-path.ts): they move the session's position, and
 *   what follows them in the same chunk still reaches Aedes;
 * - the replay takes packet ids from Aedes's own counter (`client._nextId`,
 *   src/sessions/replay.ts `takePacketId`): the first live message Aedes
 *   sends after a replay carries the next id.
 */
import type net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLeadingSeq } from "../../src/sessions/replay-plan.ts";
import { createOrders } from "../client/helpers.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import {
  connectPacket,
  onPublishes,
  type RawPublish,
  rawSocket,
  subscribePacket,
} from "../support/raw-mqtt.ts";
import { type System, startSystem } from "../support/system.ts";
import { until } from "../support/wait.ts";

let system: System;

beforeAll(async () => {
  system = await startSystem();
}, 120_000);
afterAll(async () => system?.close());

const puback = (messageId: number) => Buffer.from([0x40, 0x02, messageId >> 8, messageId & 0xff]);
const PINGREQ = Buffer.from([0xc0, 0x00]);
const PINGRESP = 13;
const SUBACK = 9;

/** A raw persistent-session client of the partner's first device: every packet type and PUBLISH it gets. */
const open = async (p: SeededPartner, clientId: string) => {
  const socket = await rawSocket(system.mqttPort);
  const publishes: (RawPublish & { seq: number | undefined })[] = [];
  const types = onPublishes(socket, (publish) =>
    publishes.push({ ...publish, seq: readLeadingSeq(publish.payload) }),
  );
  const { id, secret } = p.devices[0]!;
  socket.write(connectPacket({ clientId, clean: false, username: id, password: secret }));
  return { socket, publishes, types };
};

const offline = async (p: SeededPartner, socket: net.Socket) => {
  socket.destroy();
  await until(
    () => (system.running.broker!.stats().connected[p.id]?.device ?? 0) === 0,
    5_000,
    "the session offline",
  );
};

const headOf = async (partnerId: string) =>
  (
    await system.running.db.query<{ head_seq: number }>("SELECT head_seq FROM partners WHERE id = $1", [
      partnerId,
    ])
  )[0]!.head_seq;

describe("a persistent session's acknowledgements and packet ids", () => {
  it("PUBACKs read in bulk move its position; a PINGREQ in the same chunk is still answered", async () => {
    const p = await system.seed(1);
    const clientId = "bulk-acking-kiosk";
    const first = await open(p, clientId);
    first.socket.write(subscribePacket(1, `partners/${p.id}/shops/shop-1/orders/+`, 1));
    await until(() => first.types.includes(SUBACK), 5_000, "its SUBACK");
    const head = await headOf(p.id);
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 3);
    const events = () => first.publishes.filter((pub) => (pub.seq ?? 0) > head);
    await until(() => events().length >= 3, 10_000, "three events");
    const bulk = () => system.running.broker!.stats().sessions.acknowledgedInBulk;
    const before = bulk();
    // Every PUBACK, then a PINGREQ, in one write.
    const acked = first.publishes.map((pub) => pub.messageId!);
    first.socket.write(Buffer.concat([...acked.map(puback), PINGREQ]));
    await until(() => first.types.includes(PINGRESP), 5_000, "PINGRESP: the rest of the chunk reached Aedes");
    await until(() => bulk() >= before + acked.length, 5_000, "the PUBACKs taken in bulk");
    await offline(p, first.socket);

    // Two events pass while it is offline: the resume replays those, and nothing acknowledged.
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 2);
    const second = await open(p, clientId);
    await until(() => second.publishes.some((pub) => pub.seq === head + 5), 10_000, "the two missed events");
    expect(second.publishes.map((pub) => pub.seq)).toEqual([head + 4, head + 5]);
    expect(second.publishes.map((pub) => [pub.dup, pub.retain, pub.qos])).toEqual([
      [false, false, 1],
      [false, false, 1],
    ]);

    // The next event is live: Aedes numbers it, after the ids the replay took from its counter.
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 1);
    await until(() => second.publishes.length >= 3, 10_000, "the live event");
    const [replayedA, replayedB, live] = second.publishes.map((pub) => pub.messageId!);
    const next = (id: number) => (id >= 65535 ? 1 : id + 1);
    expect(replayedB).toBe(next(replayedA!));
    expect(live, "the live event's packet id follows the replay's").toBe(next(replayedB!));
    expect(second.publishes[2]!.seq).toBe(head + 6);
    second.socket.destroy();
  });

  it("a PUBACK split across writes (Aedes's parser holds its first half) is taken all the same", async () => {
    const p = await system.seed(1);
    const clientId = "split-acking-kiosk";
    const first = await open(p, clientId);
    first.socket.write(subscribePacket(1, `partners/${p.id}/shops/shop-1/orders/+`, 1));
    await until(() => first.types.includes(SUBACK), 5_000, "its SUBACK");
    const head = await headOf(p.id);
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 1);
    await until(() => first.publishes.some((pub) => pub.seq === head + 1), 10_000, "the event");
    // Half a PUBACK in one write, the other half and a PINGREQ in the next.
    for (const pub of first.publishes.slice(0, -1)) first.socket.write(puback(pub.messageId!));
    const last = puback(first.publishes.at(-1)!.messageId!);
    first.socket.write(last.subarray(0, 2));
    first.socket.write(Buffer.concat([last.subarray(2), PINGREQ]));
    await until(() => first.types.includes(PINGRESP), 5_000, "PINGRESP");
    await offline(p, first.socket);

    const second = await open(p, clientId);
    await createOrders(system.apiUrl, p.backend.secret, ["shop-1"], 1);
    await until(() => second.publishes.some((pub) => pub.seq === head + 2), 10_000, "the next event");
    expect(
      second.publishes.map((pub) => pub.seq),
      "nothing acknowledged comes again",
    ).toEqual([head + 2]);
    second.socket.destroy();
  });
});
