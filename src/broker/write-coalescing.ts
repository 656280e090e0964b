/**
 * One socket write per subscriber per turn of the event loop.
 *
 * Aedes writes each delivery in its own `setImmediate`, and mqtt-packet
 * uncorks the socket on the next tick after every packet: a subscriber that
 * is handed a batch of 100 messages costs 100 `writev` system calls, and on
 * loopback each one also does the receiving side's work. Measured with the
 * bridge at 1,000 events/s and 10 subscribers per partner, `writev` was a
 * quarter of the process's time.
 *
 * `hold(socket)` is called for each delivery, before Aedes queues its write:
 * the socket stays corked until the turn after, so every delivery queued
 * meanwhile leaves in one write. The cost is at most one turn of latency.
 */
import type { Writable } from "node:stream";

export const createWriteCoalescer = () => {
  const corked = new Set<Writable>();
  let scheduled = false;

  const release = (): void => {
    scheduled = false;
    for (const socket of corked) socket.uncork();
    corked.clear();
  };

  return function hold(socket: Writable): void {
    if (corked.has(socket) || socket.destroyed) return;
    socket.cork();
    corked.add(socket);
    if (scheduled) return;
    scheduled = true;
    // The deliveries' own immediates are queued after this one: release from the next turn's,
    // so they have all written by then.
    setImmediate(() => setImmediate(release));
  };
};
