/**
 * A test-only TCP proxy between an MQTT client and the broker that misbehaves
 * the way networks and platforms do. It splits the broker → client stream
 * into MQTT frames (fixed header + remaining length, MQTT 3.1.1 §2.2) and,
 * for PUBLISH frames only, drops, duplicates, or delays (and so reorders)
 * whole frames; it also cuts connections at random, refuses connections
 * (a broker that is down), or goes silent (a half-dead link). Client →
 * broker bytes pass through untouched.
 *
 * A dropped QoS 1 PUBLISH means the client never acks it; Aedes does not
 * retry within a session, so only a reconnect (or REST) brings it back.
 */
import net from "node:net";

export interface ChaosOptions {
  /** Probability that a PUBLISH frame is dropped. */
  drop?: number;
  /** Probability that a PUBLISH frame is sent twice. */
  duplicate?: number;
  /** Probability that a PUBLISH frame is held back (later frames overtake it). */
  delay?: number;
  maxDelayMs?: number;
  /** Each connection is cut after a random time in this range (ms); absent: never. */
  cutAfterMs?: [number, number];
  /** A deterministic random source (default Math.random). */
  random?: () => number;
}

export interface ChaosStats {
  connections: number;
  refused: number;
  publishes: number;
  dropped: number;
  duplicated: number;
  delayed: number;
  cuts: number;
  /** When a PUBLISH last reached a client (Date.now(); 0: never). */
  lastPublishAt: number;
}

export interface ChaosProxy {
  port: number;
  url: string;
  stats: ChaosStats;
  /** Changes the misbehaviour of new and open connections. */
  configure(options: ChaosOptions): void;
  /** While true, new connections are closed at once and open ones are cut: the broker is "down". */
  setRefusing(refusing: boolean): void;
  /** While true, nothing at all reaches the client (no PUBLISH, no PINGRESP), but TCP stays up. */
  setSilent(silent: boolean): void;
  cutAll(): void;
  close(): Promise<void>;
}

/** A small seedable PRNG (mulberry32), so a failing chaos run can be replayed. */
export const seededRandom = (seed: number): (() => number) => {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};

/** Length of the complete frame at the start of `buf`, or 0 if it is not all there yet. */
export const frameLength = (buf: Buffer): number => {
  let multiplier = 1;
  let remaining = 0;
  for (let i = 1; i <= 4; i++) {
    if (i >= buf.length) return 0;
    const byte = buf[i]!;
    remaining += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) {
      const total = 1 + i + remaining;
      return buf.length >= total ? total : 0;
    }
    multiplier *= 128;
  }
  throw new Error("malformed MQTT remaining length");
};

const PUBLISH = 3;

export const startChaosProxy = async (
  target: { host: string; port: number },
  initial: ChaosOptions = {},
): Promise<ChaosProxy> => {
  let options: ChaosOptions = { ...initial };
  let refusing = false;
  let silent = false;
  const stats: ChaosStats = {
    connections: 0,
    refused: 0,
    publishes: 0,
    dropped: 0,
    duplicated: 0,
    delayed: 0,
    cuts: 0,
    lastPublishAt: 0,
  };
  const open = new Set<{ cut(): void }>();
  const rnd = () => (options.random ?? Math.random)();

  const server = net.createServer((client) => {
    client.setNoDelay(true);
    if (refusing) {
      stats.refused++;
      client.destroy();
      return;
    }
    stats.connections++;
    const upstream = net.connect(target.port, target.host);
    upstream.setNoDelay(true);
    const timers = new Set<NodeJS.Timeout>();
    let closed = false;
    const conn = {
      cut() {
        if (closed) return;
        closed = true;
        for (const timer of timers) clearTimeout(timer);
        client.destroy();
        upstream.destroy();
        open.delete(conn);
      },
    };
    open.add(conn);
    client.on("error", () => conn.cut());
    upstream.on("error", () => conn.cut());
    client.on("close", () => conn.cut());
    upstream.on("close", () => conn.cut());
    client.pipe(upstream);

    if (options.cutAfterMs) {
      const [min, max] = options.cutAfterMs;
      const timer = setTimeout(
        () => {
          stats.cuts++;
          conn.cut();
        },
        min + rnd() * (max - min),
      );
      timers.add(timer);
    }

    const send = (frame: Buffer) => {
      if (closed || silent) return;
      client.write(frame);
      if (frame[0]! >> 4 === PUBLISH) stats.lastPublishAt = Date.now();
    };
    let pending: Buffer = Buffer.alloc(0);
    upstream.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (;;) {
        const length = frameLength(pending);
        if (length === 0) break;
        const frame = Buffer.from(pending.subarray(0, length));
        pending = pending.subarray(length);
        if (frame[0]! >> 4 !== PUBLISH) {
          send(frame);
          continue;
        }
        stats.publishes++;
        if (rnd() < (options.drop ?? 0)) {
          stats.dropped++;
          continue;
        }
        if (rnd() < (options.delay ?? 0)) {
          stats.delayed++;
          const timer = setTimeout(
            () => {
              timers.delete(timer);
              send(frame);
            },
            1 + rnd() * (options.maxDelayMs ?? 50),
          );
          timers.add(timer);
          continue;
        }
        send(frame);
        if (rnd() < (options.duplicate ?? 0)) {
          stats.duplicated++;
          send(frame);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    stats,
    configure(next) {
      options = { ...next };
    },
    setRefusing(value) {
      refusing = value;
      if (value) for (const conn of [...open]) conn.cut();
    },
    setSilent(value) {
      silent = value;
    },
    cutAll() {
      for (const conn of [...open]) {
        stats.cuts++;
        conn.cut();
      }
    },
    async close() {
      for (const conn of [...open]) conn.cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};
