/**
 * The floor for commit → another process: the writer writes each committed event, as a JSON line,
 * to a plain TCP socket the consumers' process reads, the moment its round trip returns, with no
 * bridge and no broker in between. It runs beside the product, under the same load, so its latency
 * is what any delivery path gets on this machine at that moment (the writer's loop, the scheduler,
 * loopback TCP, the consumers' loop). Lines are flushed once per turn of the event loop, as the
 * broker flushes its deliveries.
 */
import net from "node:net";
import type { OrderEvent } from "../../src/domain/events.ts";
import { nowMs } from "./machine.ts";

/** The writer's side: a server every reader connects to. */
export const createRelay = () => {
  const sockets = new Set<net.Socket>();
  let pending: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const out = pending.join("");
    pending = [];
    for (const socket of sockets) socket.write(out);
  };
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.once("close", () => sockets.delete(socket));
  });
  return {
    listen: () =>
      new Promise<number>((resolve) =>
        server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port)),
      ),
    send(event: OrderEvent) {
      if (sockets.size === 0) return;
      pending.push(`${JSON.stringify({ partner_id: event.partner_id, seq: event.seq })}\n`);
      if (scheduled) return;
      scheduled = true;
      setImmediate(flush);
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};

/** The reader's side: each event recorded with the time its chunk arrived. */
export const readRelay = (port: number, record: (partnerId: string, seq: number, t: number) => void) =>
  new Promise<void>((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve());
    socket.setNoDelay(true);
    socket.once("error", reject);
    let rest = "";
    socket.on("data", (chunk: Buffer) => {
      const t = nowMs();
      const lines = (rest + chunk.toString()).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        const event = JSON.parse(line) as { partner_id: string; seq: number };
        record(event.partner_id, event.seq, t);
      }
    });
  });
