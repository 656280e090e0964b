/**
 * The Aedes child (lib/children.ts `spawnKid("aedes")`): stock Aedes 1.2 with its default
 * persistence (aedes-persistence in memory: every QoS 1/2 message for an offline persistent session
 * is queued as a packet of its own), on a free port: what a broker that queues per message holds.
 * `enqueued` counts the queue entries it made.
 *
 * Commands: memory, stats.
 */
import net from "node:net";
import { memoryOf } from "../lib/child-tools.ts";
import { runChild, serveRpc } from "../lib/children.ts";

runChild("aedes", async () => {
  const { Aedes } = await import("aedes");
  const broker = await Aedes.createBroker();
  const persistence = (broker as unknown as { persistence: unknown }).persistence as {
    outgoingEnqueueCombi(subs: unknown[], packet: unknown, cb?: unknown): unknown;
  };
  let enqueued = 0;
  const enqueue = persistence.outgoingEnqueueCombi.bind(persistence);
  persistence.outgoingEnqueueCombi = (subs, packet, cb) => {
    enqueued += subs.length;
    return enqueue(subs, packet, cb);
  };
  const server = net.createServer((socket) => broker.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  serveRpc(
    { mqtt: (server.address() as net.AddressInfo).port },
    async (cmd, args) => {
      if (cmd === "memory") return memoryOf(Boolean((args as { gc?: boolean } | undefined)?.gc));
      if (cmd === "stats") return { enqueued, connected: broker.connectedClients };
      throw new Error(`unknown command ${cmd}`);
    },
    async () => {
      server.close();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  );
});
