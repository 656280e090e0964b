/**
 * A bench's child processes (bench/children/*.ts), forked under tsx so a load generator does not
 * share an event loop with what it measures:
 * - `spawnServer(name)`: a server under test (bench/children/serve-<name>.ts) that sends
 *   `{ ready, port, info }` once it listens;
 * - `spawnKid(mode)`: a child (bench/children/<mode>.ts) speaking a small RPC over IPC
 *   (`serveRpc` on its side): one reply per request.
 * Every child exits on SIGTERM or when its parent goes away (`exitWhenStopped`): the parent
 * decides, not Ctrl-C.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { onCleanup } from "./run.ts";

const CHILDREN = fileURLToPath(new URL("../children/", import.meta.url));

/** A bench's child process (a server under test, a load generator), run under tsx. */
export interface BenchChild {
  child: ChildProcess;
  /** The first message the child sent: it is ready. */
  ready: unknown;
  /** SIGTERM, then SIGKILL after `killAfterMs`; resolves once it exited. */
  stop(): Promise<void>;
}

export interface ForkOptions {
  /** The child's name in messages. */
  label: string;
  env?: Record<string, string>;
  nodeFlags?: string[];
  /** How long `stop()` waits after SIGTERM before SIGKILL. */
  killAfterMs: number;
}

/**
 * Forks `modulePath` with `args` under tsx, its output on our stderr (stdout is the result
 * table and BENCH_JSON), and waits up to 60 s for its first message.
 */
export const forkBenchChild = async (
  modulePath: string,
  args: string[],
  options: ForkOptions,
): Promise<BenchChild> => {
  const child: ChildProcess = fork(modulePath, args, {
    execArgv: ["--import", "tsx", ...(options.nodeFlags ?? [])],
    env: { ...process.env, ...options.env },
    stdio: ["ignore", 2, 2, "ipc"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ready = await new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${options.label} did not start within 60 s`)), 60_000);
    child.once("message", (message) => {
      clearTimeout(timer);
      resolve(message);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${options.label} exited with code ${code} before it was ready`));
    });
  });
  let stopped = false;
  return {
    child,
    ready,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), options.killAfterMs);
        await exited;
        clearTimeout(timer);
      }
    },
  };
};

/** In a bench child: runs `stop` and exits on SIGTERM or when the parent goes away (the parent decides, not Ctrl-C). */
export const exitWhenStopped = (stop: () => Promise<void>): void => {
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    void stop()
      .catch((error) => process.stderr.write(`stop failed: ${(error as Error).message}\n`))
      .finally(() => process.exit(0));
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", () => {});
  process.on("disconnect", shutdown);
};

/** Runs a child program's main; a failure is printed and ends the process with code 1. */
export const runChild = (label: string, main: () => Promise<void>): void => {
  main().catch((error) => {
    process.stderr.write(`${label} failed: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  });
};

// ---------------------------------------------------------------- servers under test

export interface SpawnedServer {
  port: number;
  url: string;
  pid: number;
  info: Record<string, unknown>;
  stop(): Promise<void>;
}

interface ReadyMessage {
  ready: true;
  port: number;
  info?: Record<string, unknown>;
}

/**
 * Forks bench/children/serve-<server>.ts with `env` added, waits for it to listen, and returns
 * its port. `brewcast`: the whole process through `startBrewcast`; `static`: a bare node:http
 * server, the floor a Node HTTP service cannot beat (see those files).
 */
export const spawnServer = async (
  server: "brewcast" | "static",
  env: Record<string, string> = {},
  /** Extra node flags for the child, e.g. `["--cpu-prof", "--cpu-prof-dir=/tmp/prof"]` to profile it. */
  nodeFlags: string[] = [],
): Promise<SpawnedServer> => {
  const { child, ready, stop } = await forkBenchChild(`${CHILDREN}serve-${server}.ts`, [], {
    label: `server ${server}`,
    env,
    nodeFlags,
    killAfterMs: 10_000,
  });
  const { port, info } = ready as ReadyMessage;
  const spawned: SpawnedServer = {
    port,
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    info: info ?? {},
    stop,
  };
  onCleanup(() => spawned.stop());
  return spawned;
};

/** In a server child: sends the ready message to the parent and exits on SIGTERM or when the parent goes away. */
export const serveUntilStopped = (port: number, info: Record<string, unknown>, stop: () => Promise<void>) => {
  exitWhenStopped(stop);
  process.send?.({ ready: true, port, info } satisfies ReadyMessage);
};

// ---------------------------------------------------------------- children speaking RPC

interface RpcMessage {
  rpc: number;
  cmd: string;
  args: unknown;
}

interface RpcReply {
  rpc: number;
  result?: unknown;
  error?: string;
}

export interface Kid {
  pid: number;
  info: Record<string, unknown>;
  call<T = unknown>(cmd: string, args?: unknown): Promise<T>;
  stop(): Promise<void>;
}

/** Forks `modulePath` with `args` and talks to it over IPC; stopped at cleanup. */
export const spawnRpcChild = async (
  modulePath: string,
  args: string[],
  options: ForkOptions,
): Promise<Kid> => {
  const { label } = options;
  const { child, ready, stop } = await forkBenchChild(modulePath, args, options);
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let next = 0;
  child.on("message", (message) => {
    const reply = message as RpcReply;
    const waiter = pending.get(reply.rpc);
    if (!waiter) return;
    pending.delete(reply.rpc);
    if (reply.error !== undefined) waiter.reject(new Error(`${label}: ${reply.error}`));
    else waiter.resolve(reply.result);
  });
  child.once("exit", (code) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`${label} exited with code ${code}`));
    pending.clear();
  });
  const kid: Kid = {
    pid: child.pid!,
    info: (ready as { ready: Record<string, unknown> }).ready,
    call<T>(cmd: string, args?: unknown) {
      const rpc = ++next;
      return new Promise<T>((resolve, reject) => {
        pending.set(rpc, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ rpc, cmd, args } satisfies RpcMessage);
      });
    },
    stop,
  };
  onCleanup(() => kid.stop());
  return kid;
};

/**
 * The children of bench/children/ that speak RPC: `brewcast` (the product with a paced writer in
 * it), `writer` (the writer alone), `clients` (MQTT subscribers and REST pollers),
 * `aedes` (stock Aedes), `sse-consumers` (the event stream bench's consumers).
 */
export type KidMode = "brewcast" | "writer" | "clients" | "aedes" | "sse-consumers";

/** Forks bench/children/<mode>.ts with `env` added; resolves once it is ready. */
export const spawnKid = (mode: KidMode, env: Record<string, string> = {}, nodeFlags: string[] = []) =>
  spawnRpcChild(`${CHILDREN}${mode}.ts`, [], { label: mode, env, nodeFlags, killAfterMs: 15_000 });

/** The child's side of the RPC: one reply per request; SIGTERM or a lost parent stops it. */
export const serveRpc = (
  info: Record<string, unknown>,
  handle: (cmd: string, args: unknown) => Promise<unknown>,
  stop: () => Promise<void> = async () => {},
) => {
  exitWhenStopped(stop);
  process.on("message", (message) => {
    const { rpc, cmd, args } = message as RpcMessage;
    handle(cmd, args).then(
      (result) => process.send?.({ rpc, result } satisfies RpcReply),
      (error) => process.send?.({ rpc, error: (error as Error).stack ?? String(error) } satisfies RpcReply),
    );
  });
  process.send?.({ ready: info });
};
