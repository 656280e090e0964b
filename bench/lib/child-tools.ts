/**
 * Tools a bench child runs on itself: how its event loop fared (delay, GC pauses), its memory, and a
 * CPU profile over a window the bench chooses.
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { sleep } from "./machine.ts";

/** How a bench child's event loop fared since the last `take()`: its delay and the GC pauses. */
export interface LoopStats {
  delayP50Ms: number;
  delayP99Ms: number;
  delayMaxMs: number;
  gcCount: number;
  gcTotalMs: number;
  gcMaxMs: number;
}

export const watchEventLoop = () => {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const pauses: number[] = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push(entry.duration);
  }).observe({ entryTypes: ["gc"] });
  return {
    take(): LoopStats {
      const stats = {
        delayP50Ms: delay.percentile(50) / 1e6,
        delayP99Ms: delay.percentile(99) / 1e6,
        delayMaxMs: delay.max / 1e6,
        gcCount: pauses.length,
        gcTotalMs: pauses.reduce((a, b) => a + b, 0),
        gcMaxMs: Math.max(0, ...pauses),
      };
      delay.reset();
      pauses.length = 0;
      return stats;
    },
  };
};

/**
 * This process's memory (`process.memoryUsage()`), after full GCs when asked and the process runs
 * with --expose-gc (`gc: false` in the answer otherwise).
 */
export const memoryOf = async (collect: boolean) => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (collect && gc) {
    for (let i = 0; i < 3; i++) {
      gc();
      await sleep(200);
    }
  }
  return { ...process.memoryUsage(), gc: collect && gc !== undefined };
};

/**
 * A CPU profile of this process over a window a bench chooses (`--profile` profiles the whole
 * life of the process: start, seeding, the bridge catching up): start, then stop and write a
 * `.cpuprofile` that bench/profile-top.ts reads.
 */
export const windowProfiler = () => {
  let session: Session | undefined;
  return {
    async start() {
      session = new Session();
      session.connect();
      await session.post("Profiler.enable");
      await session.post("Profiler.setSamplingInterval", { interval: 200 });
      await session.post("Profiler.start");
      return null;
    },
    async stop(file: string) {
      if (!session) throw new Error("no profile started");
      const { profile } = await session.post("Profiler.stop");
      session.disconnect();
      session = undefined;
      writeFileSync(file, JSON.stringify(profile));
      return { file };
    },
  };
};
