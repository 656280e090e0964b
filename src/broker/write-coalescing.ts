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
 * `hold(socket)` is called for each delivery, just before Aedes queues the
 * immediate that writes it. From then on the socket's writes are kept in a
 * list; a release queued behind those immediates copies the list into one
 * buffer that leaves in one write, in the same turn. Each run of code that
 * holds sockets (a message entering Aedes; a batch enters one message per
 * microtask) queues its own release, and a release leaves a socket held when a
 * later delivery to it is still queued: the last release sends the batch. A
 * socket that deliveries made from every next turn keep holding is sent once
 * it has waited MAX_HOLD_MS.
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

/**
 * How long a release may leave a socket to a later one. Within a turn that is a batch being
 * delivered (a 500-message batch takes a few milliseconds of Aedes's time, and the high-water
 * mark splits it anyway); across turns it would be a socket whose next delivery always comes
 * from the next turn (an offline queue flushed on reconnect, a mqemitter at its concurrency
 * limit), held until its high-water mark filled.
 */
const MAX_HOLD_MS = 2;

interface Held {
  socket: Writable;
  /** The stream's own `write`. */
  write: (chunk: unknown, encoding?: unknown, callback?: unknown) => boolean;
  /** Never more than the socket's high-water mark is held, so Aedes's backpressure works as before. */
  limit: number;
  held: boolean;
  /** The release that lets it go: the one queued after the latest delivery to it. */
  releasedBy: number;
  /** When it was held, or last sent while a later delivery kept it held (`performance.now()`). */
  heldSince: number;
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
    releasedBy: 0,
    heldSince: 0,
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
/** `maxHoldMs`: see MAX_HOLD_MS (tests of the batching pass a long one, so a slow turn cannot split it). */
export const createWriteCoalescer = (maxHoldMs = MAX_HOLD_MS) => {
  const sockets = new WeakMap<Writable, Held>();
  /** Sockets held since the last release was queued, and that release's number. */
  let holding: Held[] = [];
  let releases = 0;
  let queueDue = false;

  const release = (id: number, batch: Held[]): void => {
    let now = 0;
    for (const h of batch) {
      if (!h.held) continue;
      if (h.releasedBy !== id) {
        // A later delivery to it is queued behind this release: the later release sends both,
        // unless the socket has waited long enough. It stays held for that later release.
        now ||= performance.now();
        if (now - h.heldSince < maxHoldMs) continue;
        h.heldSince = now;
        flush(h);
        continue;
      }
      h.held = false;
      flush(h);
    }
  };

  // A microtask: it runs once the code that called hold() has queued its delivery's immediate,
  // so the release is queued behind that delivery.
  const queueRelease = (): void => {
    queueDue = false;
    const batch = holding;
    holding = [];
    setImmediate(release, releases, batch);
  };

  return function hold(socket: Writable): void {
    if (socket.destroyed) return;
    let h = sockets.get(socket);
    if (h === undefined) {
      h = attach(socket);
      sockets.set(socket, h);
    }
    if (!queueDue) {
      queueDue = true;
      releases++;
      queueMicrotask(queueRelease);
    }
    if (!h.held) {
      h.held = true;
      h.heldSince = performance.now();
    }
    if (h.releasedBy === releases) return;
    h.releasedBy = releases;
    holding.push(h);
  };
};
