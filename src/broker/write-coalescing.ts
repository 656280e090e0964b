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
 * until the turn after, the socket's writes are kept in a list, then copied
 * into one buffer that leaves in one write. The cost is at most one turn of
 * latency.
 *
 * Not `cork()`: a corked stream keeps an object per `write()` (six per
 * PUBLISH from mqtt-packet), and held for a turn of a 1→1000 fan-out they
 * outlived young-generation GCs and were promoted: for 1,000,000 deliveries
 * ~165 MiB more promoted than stock Aedes, and a peak RSS ~40 MiB higher.
 * Copying each write into a buffer per socket instead left ~20 MiB of
 * promoted buffers outside the heap. A list per socket, reused, allocates
 * nothing while it holds.
 */
import type { Writable } from "node:stream";

/** A socket's list is dropped after a flush once longer than this, so that it does not stay large. */
const KEEP_CHUNKS = 256;

interface Held {
  socket: Writable;
  /** The stream's own `write`. */
  write: (chunk: unknown, encoding?: unknown, callback?: unknown) => boolean;
  /** Never more than the socket's high-water mark is held, so Aedes's backpressure works as before. */
  limit: number;
  held: boolean;
  chunks: (Buffer | string | undefined)[];
  count: number;
  bytes: number;
}

/** Writes what is held, in one buffer. Returns what the stream's `write` returned (false: wait for 'drain'). */
const flush = (h: Held): boolean => {
  const { chunks, count, bytes } = h;
  if (count === 0) return true;
  const out = Buffer.allocUnsafe(bytes);
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const chunk = chunks[i]!;
    chunks[i] = undefined;
    if (typeof chunk === "string") offset += out.write(chunk, offset, "utf8");
    else {
      out.set(chunk, offset);
      offset += chunk.length;
    }
  }
  h.count = 0;
  h.bytes = 0;
  if (count > KEEP_CHUNKS) h.chunks = [];
  // Dropped, as a destroyed stream drops what is corked in it (`end()` flushed before ending).
  if (h.socket.destroyed || h.socket.writableEnded) return true;
  return h.write.call(h.socket, out);
};

const attach = (socket: Writable): Held => {
  const h: Held = {
    socket,
    write: socket.write as Held["write"],
    limit: socket.writableHighWaterMark,
    held: false,
    chunks: [],
    count: 0,
    bytes: 0,
  };
  socket.write = function write(this: Writable, chunk: unknown, encoding?: unknown, callback?: unknown) {
    let size = -1;
    if (h.held && callback === undefined && !this.destroyed) {
      if (typeof chunk === "string") {
        if (encoding === undefined || encoding === "utf8") size = Buffer.byteLength(chunk);
      } else if (Buffer.isBuffer(chunk) && encoding === undefined) size = chunk.length;
    }
    if (size < 0 || size >= h.limit) {
      // Not held, or not a plain write: what is held goes first, then this, as the stream would.
      if (h.count > 0) flush(h);
      return h.write.call(this, chunk, encoding, callback);
    }
    if (h.bytes + size > h.limit) flush(h);
    h.chunks[h.count++] = chunk as Buffer | string;
    h.bytes += size;
    // As a corked stream would answer: false once it holds its high-water mark, and then the real
    // write sets up the 'drain' that Aedes waits for.
    if (this.writableLength + h.bytes >= h.limit) return flush(h);
    return true;
  } as Writable["write"];
  // `end()` writes its own chunk without `write`, and a client's FIN ends the socket too (after
  // replacing `write`): what is held leaves first, as an uncorking `end()` would send it.
  const end = socket.end;
  socket.end = function (this: Writable, ...args: unknown[]) {
    if (h.count > 0) flush(h);
    return (end as (...a: unknown[]) => Writable).apply(this, args);
  } as Writable["end"];
  return h;
};
export const createWriteCoalescer = () => {
  const sockets = new WeakMap<Writable, Held>();
  const holding: Held[] = [];
  let scheduled = false;

  const release = (): void => {
    scheduled = false;
    for (const h of holding) {
      h.held = false;
      flush(h);
    }
    holding.length = 0;
  };

  return function hold(socket: Writable): void {
    if (socket.destroyed) return;
    let h = sockets.get(socket);
    if (h === undefined) {
      h = attach(socket);
      sockets.set(socket, h);
    }
    if (h.held) return;
    h.held = true;
    holding.push(h);
    if (scheduled) return;
    scheduled = true;
    // The deliveries' own immediates are queued after this one: release from the next turn's,
    // so they have all written by then.
    setImmediate(() => setImmediate(release));
  };
};
