/**
 * A bench's main and its command line: cleanups that run whether it succeeds, fails or is
 * interrupted, and the flags every bench accepts (plus a bench's own).
 */
import { type ParseArgsConfig, parseArgs } from "node:util";

const log = (line: string) => process.stderr.write(`${line}\n`);

const cleanups: (() => Promise<void>)[] = [];

/** Registers a cleanup that runs (last first) at `runCleanups()` or on SIGINT/SIGTERM. */
export const onCleanup = (fn: () => Promise<void>): void => {
  cleanups.push(fn);
};

export const runCleanups = async (): Promise<void> => {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    await fn().catch((error) => log(`cleanup failed: ${(error as Error).message}`));
  }
};

let signalsHooked = false;
const hookSignals = () => {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      void runCleanups().finally(() => process.exit(130));
    });
  }
};

/** Runs a bench's main: cleanups run whether it succeeds, fails or is interrupted. */
export const runBench = (main: () => Promise<void>): void => {
  hookSignals();
  main()
    .then(runCleanups)
    .catch(async (error) => {
      log(`bench failed: ${(error as Error).stack ?? error}`);
      await runCleanups();
      process.exitCode = 1;
    });
};

export interface BenchArgs {
  quick: boolean;
  rounds: number | undefined;
  seconds: number | undefined;
  /**
   * Node flags for the server under test: `--profile DIR` writes its CPU profile there, and each
   * `--server-node-flag F` adds F (`--server-node-flag=--max-semi-space-size=64`).
   */
  serverFlags: string[];
}

/**
 * The flags every bench accepts: --quick (a short smoke run), --rounds N,
 * --seconds N (per case per round), --profile DIR (CPU profile of the server under test),
 * --server-node-flag F (repeatable: a Node flag for the server under test).
 */
const COMMON_OPTIONS = {
  quick: { type: "boolean", default: false },
  rounds: { type: "string" },
  seconds: { type: "string" },
  profile: { type: "string" },
  "server-node-flag": { type: "string", multiple: true },
} as const;

type OwnOptions = NonNullable<ParseArgsConfig["options"]>;

/**
 * The flags every bench accepts: --quick (a short smoke run), --rounds N,
 * --seconds N (per case per round), --profile DIR (CPU profile of the server under test),
 * --server-node-flag F (repeatable: a Node flag for the server under test); with `own`, a bench's
 * own flags too (their values in `own`). Any other flag is an error.
 */
export const parseBenchArgs = <O extends OwnOptions = Record<never, never>>(
  argv = process.argv.slice(2),
  own?: O,
): BenchArgs & { own: Record<keyof O, string | undefined> } => {
  const { values } = parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...own } });
  const common = values as unknown as {
    quick?: boolean;
    rounds?: string;
    seconds?: string;
    profile?: string;
    "server-node-flag"?: string[];
  };
  const int = (value: string | undefined, flag: string) => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer`);
    return n;
  };
  const ownValues = Object.fromEntries(
    Object.keys(own ?? {}).map((key) => [
      key,
      (values as Record<string, unknown>)[key] as string | undefined,
    ]),
  ) as Record<keyof O, string | undefined>;
  return {
    quick: Boolean(common.quick),
    rounds: int(common.rounds, "rounds"),
    seconds: int(common.seconds, "seconds"),
    serverFlags: [
      ...(common.profile ? ["--cpu-prof", `--cpu-prof-dir=${common.profile}`] : []),
      ...(common["server-node-flag"] ?? []),
    ],
    own: ownValues,
  };
};

/** A positive whole number from a bench's own flag (`--rate 500`). */
export const positiveInt = (value: string | undefined, flag: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer`);
  return n;
};
