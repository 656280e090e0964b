/** Receipt times of one channel, keyed by (partner, seq), to match against the writer's commits. */
import { median } from "./stats.ts";

/** Receipts of one channel: (partner, seq, time), in arrival order. */
export class Receipts {
  names: string[] = [];
  index = new Map<string, number>();
  p: number[] = [];
  seq: number[] = [];
  t: number[] = [];
  firstAt = Number.POSITIVE_INFINITY;
  lastAt = 0;
  record(partnerId: string, seq: number, t: number) {
    let i = this.index.get(partnerId);
    if (i === undefined) {
      i = this.names.length;
      this.index.set(partnerId, i);
      this.names.push(partnerId);
    }
    this.p.push(i);
    this.seq.push(seq);
    this.t.push(t);
    if (t < this.firstAt) this.firstAt = t;
    if (t > this.lastAt) this.lastAt = t;
  }
  reset() {
    this.p = [];
    this.seq = [];
    this.t = [];
    this.firstAt = Number.POSITIVE_INFINITY;
    this.lastAt = 0;
  }
  get count() {
    return this.t.length;
  }
}

/** Latency figures of one round (ms): percentiles, the longest, receipts against those expected. */
export interface LatencyFigures {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  received: number;
  expected: number;
}

/** The rounds' latencies together: median of each percentile, the longest, every receipt. */
export const summarise = (rs: LatencyFigures[]) => ({
  p50: median(rs.map((r) => r.p50)),
  p90: median(rs.map((r) => r.p90)),
  p99: median(rs.map((r) => r.p99)),
  max: Math.max(...rs.map((r) => r.max)),
  received: rs.reduce((a, r) => a + r.received, 0),
  expected: rs.reduce((a, r) => a + r.expected, 0),
});
