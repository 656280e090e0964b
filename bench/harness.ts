/**
 * The old import path of the bench library (bench/lib/): benches written against it keep
 * compiling. New code imports from bench/lib/ directly, by purpose.
 */
export { adminPost, benchAdminToken } from "./lib/admin.ts";
export {
  type BenchChild,
  exitWhenStopped,
  forkBenchChild,
  type SpawnedServer,
  spawnServer,
} from "./lib/children.ts";
export {
  type BenchCase,
  type BenchRatio,
  type CaseSummary,
  type ComparisonResult,
  formatResult,
  type Measurement,
  type RatioSummary,
  runComparison,
} from "./lib/comparison.ts";
export {
  type BenchDatabase,
  createBenchDatabase,
  DEFAULT_ADMIN_DATABASE_URL,
  postgresVersion,
} from "./lib/database.ts";
export { type HttpRequest, measureHttp, measureLoop } from "./lib/load.ts";
export { coresBusy, type MachineCpu, type MachineNote, machineCpu, machineNote } from "./lib/machine.ts";
export { type BenchArgs, onCleanup, parseBenchArgs, runBench, runCleanups } from "./lib/run.ts";
