/**
 * The machine and its processes: a note of the machine for each result, how many cores were busy,
 * and a process's CPU and memory from /proc. Time is `process.hrtime` (CLOCK_MONOTONIC), which
 * every process on the machine shares, so a time taken in one process and a time taken in another
 * are comparable to the microsecond.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import { round } from "./stats.ts";

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface MachineNote {
  cpus: number;
  cpuModel: string;
  memGiB: number;
  loadavg1: number;
  node: string;
  platform: string;
  postgres?: string;
}

export const machineNote = (postgres?: string): MachineNote => ({
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
  memGiB: Math.round(os.totalmem() / 2 ** 30),
  loadavg1: round(os.loadavg()[0] ?? 0),
  node: process.version,
  platform: `${os.platform()} ${os.release()}`,
  ...(postgres ? { postgres } : {}),
});

/** The whole machine's CPU time so far, every core (ms, from `os.cpus()`): see `coresBusy`. */
export interface MachineCpu {
  busyMs: number;
  totalMs: number;
}

export const machineCpu = (): MachineCpu => {
  let busyMs = 0;
  let totalMs = 0;
  for (const { times } of os.cpus()) {
    const all = times.user + times.nice + times.sys + times.idle + times.irq;
    totalMs += all;
    busyMs += all - times.idle;
  }
  return { busyMs, totalMs };
};

/**
 * How many of the machine's cores were busy between two readings, whoever kept them busy: a
 * tail latency measured while both of two cores were busy says more about the machine than the
 * product.
 */
export const coresBusy = (from: MachineCpu, to: MachineCpu): number =>
  to.totalMs > from.totalMs
    ? ((to.busyMs - from.busyMs) / (to.totalMs - from.totalMs)) * os.cpus().length
    : Number.NaN;

const CLOCK_TICK_MS = 10; // USER_HZ = 100

/** utime + stime of a process (ms of CPU) from /proc. */
export const cpuMsOf = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS;
};

/** Resident set size of a process, in MiB. */
export const rssMibOf = (pid: number): number => {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) / 1024 : Number.NaN;
};

/** Samples a process's CPU over `fn` and its RSS every second; CPU as % of one core. */
export const watchProcess = async <T>(
  pid: number,
  fn: () => Promise<T>,
): Promise<{ result: T; cpuPercent: number; rssMeanMib: number; rssMaxMib: number; seconds: number }> => {
  const rss: number[] = [rssMibOf(pid)];
  const timer = setInterval(() => rss.push(rssMibOf(pid)), 1000);
  const cpu0 = cpuMsOf(pid);
  const t0 = nowMs();
  try {
    const result = await fn();
    const seconds = (nowMs() - t0) / 1000;
    const cpuPercent = ((cpuMsOf(pid) - cpu0) / (seconds * 1000)) * 100;
    rss.push(rssMibOf(pid));
    return {
      result,
      cpuPercent,
      rssMeanMib: rss.reduce((a, b) => a + b, 0) / rss.length,
      rssMaxMib: Math.max(...rss),
      seconds,
    };
  } finally {
    clearInterval(timer);
  }
};
