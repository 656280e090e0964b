/**
 * src/broker/write-coalescing.ts: a held socket's writes leave later as one
 * write, in order with anything written around them, and the stream's
 * backpressure (false, then 'drain') still reaches the writer.
 */
import net from "node:net";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createWriteCoalescer } from "../../src/broker/write-coalescing.ts";

const turns = (n: number) =>
  new Promise<void>((resolve) => {
    const next = (left: number): void => {
      if (left === 0) resolve();
      else setImmediate(() => next(left - 1));
    };
    next(n);
  });

/** A stream that records each write it receives; `stall` keeps its writes pending. */
const sink = (highWaterMark = 16_384) => {
  const writes: string[] = [];
  let stalled: (() => void)[] | null = null;
  const stream = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      writes.push(chunk.toString());
      if (stalled) stalled.push(callback);
      else callback();
    },
  });
  return {
    stream,
    writes,
    stall: () => {
      stalled = [];
    },
    /** Completes the pending writes; the stream's next ones go through at once. */
    resume: () => {
      const pending = stalled ?? [];
      stalled = null;
      for (const callback of pending) callback();
    },
  };
};

describe("write coalescing", () => {
  /** What Aedes does for one delivery: hold the socket, then queue the immediate that writes it. */
  const deliverer = (hold: (socket: Writable) => void) => (stream: Writable, text: string) => {
    hold(stream);
    setImmediate(() => stream.write(text));
  };
  /** The writes seen by an immediate queued now, after everything queued before it. */
  const laterThisTurn = (s: { writes: string[] }) =>
    new Promise<string[]>((resolve) => setImmediate(() => resolve([...s.writes])));

  it("sends a batch's deliveries to a socket as one write, in the turn they were written", async () => {
    // However slow this turn is, the batch is not split by the 2 ms bound (tested below).
    const hold = createWriteCoalescer(60_000);
    const deliver = deliverer(hold);
    const s = sink();
    s.stream.write("before|");
    // A batch enters Aedes one message per microtask, each message's delivery queued on its own.
    deliver(s.stream, "a");
    await Promise.resolve();
    deliver(s.stream, "b");
    await Promise.resolve();
    deliver(s.stream, "é");
    await Promise.resolve();
    expect(s.writes).toEqual(["before|"]);
    expect(await laterThisTurn(s)).toEqual(["before|", "abé"]);
    s.stream.write("after");
    expect(s.writes).toEqual(["before|", "abé", "after"]);
  });

  it("does not keep a socket waiting for deliveries to other sockets queued for the next turn", async () => {
    const hold = createWriteCoalescer();
    const deliver = deliverer(hold);
    const first = sink();
    const second = sink();
    // Runs in the check phase before the first socket's delivery, and delivers to the second
    // socket as the bridge's next batch does from an Aedes callback: that delivery and its
    // release are queued for the next turn.
    setImmediate(() => deliver(second.stream, "next turn"));
    deliver(first.stream, "this turn");
    await Promise.resolve();
    expect(await laterThisTurn(first)).toEqual(["this turn"]);
    expect(second.writes).toEqual([]);
    await turns(2);
    expect(second.writes).toEqual(["next turn"]);
  });

  it("sends a socket that deliveries from every next turn keep holding once it has waited 2 ms", async () => {
    const hold = createWriteCoalescer();
    const deliver = deliverer(hold);
    const s = sink();
    const writesAtTurn: number[] = [];
    const sent: string[] = [];
    await new Promise<void>((done) => {
      let turn = 0;
      const step = () => {
        // Each turn takes at least half a millisecond, as a loaded broker's turns do.
        const busyUntil = performance.now() + 0.5;
        while (performance.now() < busyUntil);
        writesAtTurn.push(s.writes.length);
        if (++turn === 40) return done();
        sent.push(`${turn},`);
        // From an immediate: the delivery, and the release behind it, are queued for the next turn.
        deliver(s.stream, `${turn},`);
        setImmediate(step);
      };
      setImmediate(step);
    });
    await turns(3);
    expect(s.writes.join("")).toBe(sent.join(""));
    // Not one write at the end of the chain: the first leaves after about 2 ms, four turns.
    const firstWriteTurn = writesAtTurn.findIndex((count) => count > 0);
    expect(firstWriteTurn).toBeGreaterThan(0);
    expect(firstWriteTurn).toBeLessThanOrEqual(8);
  });

  it("writes what is held before a write it does not hold", async () => {
    const hold = createWriteCoalescer();
    const s = sink();
    hold(s.stream);
    s.stream.write("a");
    await new Promise<void>((resolve) => s.stream.write("b", () => resolve()));
    expect(s.writes).toEqual(["a", "b"]);
    await turns(3);
    expect(s.writes).toEqual(["a", "b"]);
  });

  it("answers false at the high-water mark, and 'drain' follows", async () => {
    const hold = createWriteCoalescer();
    const s = sink(100);
    s.stall();
    hold(s.stream);
    expect(s.stream.write("x".repeat(60))).toBe(true);
    expect(s.stream.write("y".repeat(60))).toBe(false);
    const drained = new Promise<void>((resolve) => s.stream.once("drain", () => resolve()));
    s.resume();
    await drained;
    expect(s.writes.join("")).toBe("x".repeat(60) + "y".repeat(60));
  });

  it("writes what is held before end() and its last chunk", async () => {
    const hold = createWriteCoalescer();
    const s = sink();
    hold(s.stream);
    s.stream.write("held|");
    await new Promise<void>((resolve) => s.stream.end("last", () => resolve()));
    expect(s.writes).toEqual(["held|", "last"]);
  });

  it("sends what is held to a TCP peer that half-closes its side", async () => {
    const hold = createWriteCoalescer();
    const received: Buffer[] = [];
    const server = net.createServer((socket) => {
      // Held while the peer's FIN arrives: Node ends this side on FIN (allowHalfOpen is false).
      hold(socket);
      socket.write("held before the FIN");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    const { port } = server.address() as net.AddressInfo;
    const client = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => client.end());
    client.on("data", (chunk: Buffer) => received.push(chunk));
    await new Promise<void>((resolve) => client.on("end", () => resolve()));
    server.close();
    expect(Buffer.concat(received).toString()).toBe("held before the FIN");
  });

  it("drops what a destroyed socket held", async () => {
    const hold = createWriteCoalescer();
    const s = sink();
    hold(s.stream);
    s.stream.write("a");
    s.stream.destroy();
    await turns(3);
    expect(s.writes).toEqual([]);
  });
});
