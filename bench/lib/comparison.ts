/**
 * A comparison run: every benchmark runs its subject and a peer in the same run, interleaved, and
 * reports the ratio subject/peer, because an absolute figure on a shared machine means little and
 * a ratio survives.
 *
 * `runComparison` runs the cases in rounds (ABBA order: the order reverses every round, so a slow
 * drift of the machine hits every case alike), takes the median rate of each case over the rounds
 * and the median of the per-round ratios, prints a table, and emits one machine-readable JSON line
 * (`BENCH_JSON {...}`).
 */
import { type MachineNote, machineNote } from "./machine.ts";
import { median, round } from "./stats.ts";

export interface Measurement {
  /** Successful operations per second (2xx responses for HTTP). */
  rate: number;
  unit: "req/s" | "ops/s";
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  ok: number;
  /** Failed operations: connection errors, timeouts, non-2xx responses. */
  failed: number;
  seconds: number;
}

export interface BenchCase {
  name: string;
  /** The peer this case is compared with (another case's name); absent for a peer itself. */
  peer?: string;
  run(seconds: number): Promise<Measurement>;
}

export interface BenchRatio {
  label: string;
  numerator: string;
  denominator: string;
  /** The ratio must be at least this; printed as met or missed. */
  goal?: number;
}

export interface CaseSummary {
  name: string;
  peer: string | null;
  unit: Measurement["unit"];
  rate: number;
  rates: number[];
  p50: number;
  p99: number;
  failed: number;
}

export interface RatioSummary extends BenchRatio {
  value: number;
  met: boolean | null;
}

export interface ComparisonResult {
  bench: string;
  date: string;
  machine: MachineNote;
  params: Record<string, unknown>;
  cases: CaseSummary[];
  ratios: RatioSummary[];
  /** A bench's own figures beyond rates (see `runComparison`'s `details`). */
  details?: unknown;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** Prints a bench's own result as the one `BENCH_JSON` line (bench, date, machine, then `body`). */
export const printBenchJson = (bench: string, machine: MachineNote, body: Record<string, unknown>): void => {
  process.stdout.write(
    `BENCH_JSON ${JSON.stringify({ bench, date: new Date().toISOString(), machine, ...body })}\n`,
  );
};

/**
 * Runs every case `rounds` times, the order reversed every other round, then
 * prints a table (stdout), the ratios, and one `BENCH_JSON` line.
 */
export const runComparison = async (options: {
  bench: string;
  rounds: number;
  /** Length of each case's run in each round. */
  seconds: number;
  cases: BenchCase[];
  ratios?: BenchRatio[];
  params?: Record<string, unknown>;
  machine?: MachineNote;
  /** Run each case once for this long first and discard the result (JIT, caches, pools). */
  warmupSeconds?: number;
  /**
   * A bench's own figures, asked for once every round ran: `text` is printed after the ratios,
   * `json` goes into the BENCH_JSON line as `details`.
   */
  details?: () => { text: string; json: unknown };
}): Promise<ComparisonResult> => {
  const byName = new Map(options.cases.map((c) => [c.name, c]));
  for (const c of options.cases) {
    if (c.peer !== undefined && !byName.has(c.peer)) throw new Error(`case ${c.name}: no peer ${c.peer}`);
  }
  if (options.warmupSeconds) {
    for (const c of options.cases) {
      log(`[${options.bench}] warm-up ${c.name}`);
      await c.run(options.warmupSeconds);
    }
  }
  const samples = new Map<string, Measurement[]>(options.cases.map((c) => [c.name, []]));
  for (let r = 0; r < options.rounds; r++) {
    const order = r % 2 === 0 ? options.cases : [...options.cases].reverse();
    for (const c of order) {
      const m = await c.run(options.seconds);
      samples.get(c.name)!.push(m);
      log(
        `[${options.bench}] round ${r + 1}/${options.rounds} ${c.name}: ${Math.round(m.rate)} ${m.unit}, p99 ${m.latencyMs.p99} ms${m.failed ? `, ${m.failed} failed` : ""}`,
      );
    }
  }

  const cases: CaseSummary[] = options.cases.map((c) => {
    const ms = samples.get(c.name)!;
    return {
      name: c.name,
      peer: c.peer ?? null,
      unit: ms[0]!.unit,
      rate: Math.round(median(ms.map((m) => m.rate))),
      rates: ms.map((m) => Math.round(m.rate)),
      p50: round(median(ms.map((m) => m.latencyMs.p50))),
      p99: round(median(ms.map((m) => m.latencyMs.p99))),
      failed: ms.reduce((sum, m) => sum + m.failed, 0),
    };
  });
  const assertCase = (name: string) => {
    if (!samples.has(name)) throw new Error(`ratio refers to unknown case ${name}`);
  };
  const pairs: BenchRatio[] = [
    ...cases
      .filter((c) => c.peer !== null)
      .map((c) => ({ label: `${c.name} / ${c.peer}`, numerator: c.name, denominator: c.peer! })),
    ...(options.ratios ?? []),
  ];
  // The median of the per-round ratios: the two cases of a round ran minutes apart at
  // most, so a machine that slows down for a while slows both sides of the ratio.
  const ratios: RatioSummary[] = pairs.map((ratio) => {
    assertCase(ratio.numerator);
    assertCase(ratio.denominator);
    const num = samples.get(ratio.numerator)!;
    const den = samples.get(ratio.denominator)!;
    const value = median(num.map((m, r) => m.rate / den[r]!.rate));
    return { ...ratio, value: round(value, 3), met: ratio.goal === undefined ? null : value >= ratio.goal };
  });
  // Peer-vs-subject ratios take their goal from an explicit ratio of the same pair, if any.
  const result: ComparisonResult = {
    bench: options.bench,
    date: new Date().toISOString(),
    machine: options.machine ?? machineNote(),
    params: { rounds: options.rounds, seconds: options.seconds, ...options.params },
    cases,
    ratios: dedupeRatios(ratios),
  };
  const details = options.details?.();
  if (details) result.details = details.json;
  process.stdout.write(formatResult(result));
  if (details) process.stdout.write(`${details.text}\n`);
  process.stdout.write(`BENCH_JSON ${JSON.stringify(result)}\n`);
  return result;
};

const dedupeRatios = (ratios: RatioSummary[]): RatioSummary[] => {
  const seen = new Map<string, RatioSummary>();
  for (const ratio of ratios) {
    const key = `${ratio.numerator}\u0000${ratio.denominator}`;
    const earlier = seen.get(key);
    // An explicit ratio (with a label or goal of its own) replaces the implicit one.
    seen.set(key, earlier && ratio.goal === undefined ? earlier : ratio);
  }
  return [...seen.values()];
};

const pad = (text: string, width: number, right = false) =>
  right ? text.padStart(width) : text.padEnd(width);

export const formatResult = (result: ComparisonResult): string => {
  const m = result.machine;
  const lines = [
    "",
    `${result.bench} — ${result.date}`,
    `machine: ${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB, load ${m.loadavg1} at start, node ${m.node}${m.postgres ? `, ${m.postgres}` : ""}`,
    `params: ${JSON.stringify(result.params)}`,
    "",
  ];
  const nameWidth = Math.max(4, ...result.cases.map((c) => c.name.length));
  lines.push(
    `${pad("case", nameWidth)}  ${pad("rate (median)", 16, true)}  ${pad("rounds", 24)}  ${pad("p50 ms", 8, true)}  ${pad("p99 ms", 8, true)}  ${pad("failed", 6, true)}`,
  );
  for (const c of result.cases) {
    lines.push(
      `${pad(c.name, nameWidth)}  ${pad(`${c.rate.toLocaleString("en-US")} ${c.unit}`, 16, true)}  ${pad(c.rates.join(" "), 24)}  ${pad(String(c.p50), 8, true)}  ${pad(String(c.p99), 8, true)}  ${pad(String(c.failed), 6, true)}`,
    );
  }
  lines.push("");
  const labelWidth = Math.max(5, ...result.ratios.map((r) => r.label.length));
  lines.push(`${pad("ratio", labelWidth)}  ${pad("value", 8, true)}  goal`);
  for (const r of result.ratios) {
    const goal = r.goal === undefined ? "" : `≥ ${r.goal} ${r.met ? "met" : "MISSED"}`;
    lines.push(`${pad(r.label, labelWidth)}  ${pad(r.value.toFixed(3), 8, true)}  ${goal}`);
  }
  lines.push("");
  return `${lines.join("\n")}\n`;
};

/** The line every bench's own table starts with: the machine, its load when the run ended. */
export const machineLine = (m: MachineNote): string =>
  `machine: ${m.cpus} × ${m.cpuModel}, load ${m.loadavg1} at end, node ${m.node}, ${m.postgres}`;
