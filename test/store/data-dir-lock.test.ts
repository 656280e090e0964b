/**
 * The embedded data directory's lock, with real `brewcast start` processes:
 * only a live process holding the directory refuses a start. A crashed
 * holder (even one not yet reaped), or a leftover lock file naming our own
 * PID or PID 1 (a container restart), does not.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { lockDataDir } from "../../src/store/data-dir-lock.ts";
import { useCleanups } from "../support/cleanups.ts";
import { waitFor } from "../support/wait.ts";

const BIN = fileURLToPath(new URL("../../bin/brewcast.js", import.meta.url));
const START_MS = 90_000;

const onCleanup = useCleanups();

interface Brewcast {
  child: ChildProcess;
  exited: Promise<number | null>;
  /** Resolves on the `listening` log line; rejects if the process exits first. */
  listening: Promise<void>;
  stderr(): string;
}

const newDataDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "brewcast-lock-"));
  onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

/**
 * `brewcast start` on `dataDir`. With `shell`, runs `sh -c shell` instead,
 * with $0 = node, $1 = the CLI and $2 = the data directory in its arguments.
 */
const startBrewcast = (dataDir: string, shell?: string): Brewcast => {
  const env = {
    PATH: process.env.PATH,
    BREWCAST_DATA_DIR: dataDir,
    BREWCAST_HTTP_PORT: "0",
    BREWCAST_MQTT_PORT: "0",
    BREWCAST_ADMIN_TOKEN: "data-dir-lock-test-admin-token",
    LOG_LEVEL: "info",
  };
  const child = shell
    ? spawn("sh", ["-c", shell, process.execPath, BIN, dataDir], { env, stdio: ["ignore", "pipe", "pipe"] })
    : spawn(process.execPath, [BIN, "start"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const listening = new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('"msg":"listening"')) resolve();
    });
    void exited.then((code) => reject(new Error(`brewcast exited (${code}) before listening: ${stderr}`)));
  });
  // A start that is expected to fail must not leave an unhandled rejection behind.
  listening.catch(() => undefined);
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  });
  return { child, exited, listening, stderr: () => stderr };
};

const lockFile = (dir: string): string => readFileSync(join(dir, "brewcast.lock"), "utf8");

/** Linux process state: "Z" is a process that has died and not been reaped yet. */
const processState = (pid: number): string | undefined => {
  try {
    return /\) (\S) /.exec(readFileSync(`/proc/${pid}/stat`, "utf8"))?.[1];
  } catch {
    return undefined;
  }
};

describe("embedded data directory lock", () => {
  it.skipIf(process.platform !== "linux")(
    "a start right after the holder is SIGKILLed, while the dead holder is still an unreaped zombie, takes the directory",
    async () => {
      const dir = newDataDir();
      // The holder's parent becomes `sleep`, which never reaps it: it stays a zombie after SIGKILL,
      // as a crashed service does until its supervisor gets to it.
      const parent = startBrewcast(dir, '"$0" "$1" start & exec sleep 600');
      await parent.listening;
      const holder = Number(lockFile(dir));
      expect(holder).toBeGreaterThan(0);
      expect(holder).not.toBe(parent.child.pid);
      onCleanup(async () => {
        if (processState(holder) !== undefined) process.kill(holder, "SIGKILL");
      });

      process.kill(holder, "SIGKILL");
      await waitFor("the killed holder to be a zombie", () => processState(holder) === "Z");
      const restarted = startBrewcast(dir);
      await restarted.listening;
      expect(lockFile(dir)).toBe(String(restarted.child.pid));
    },
    2 * START_MS,
  );

  it(
    "a leftover lock file naming the starting process's own PID does not block it (a container restart)",
    async () => {
      const dir = newDataDir();
      // exec keeps the shell's PID, so the file names the very process that then starts.
      const own = startBrewcast(dir, 'echo $$ > "$2/brewcast.lock" && exec "$0" "$1" start');
      await own.listening;
      expect(lockFile(dir)).toBe(String(own.child.pid));
    },
    START_MS,
  );

  it(
    "a leftover lock file naming PID 1 does not block a start",
    async () => {
      const dir = newDataDir();
      writeFileSync(join(dir, "brewcast.lock"), "1");
      const started = startBrewcast(dir);
      await started.listening;
      expect(lockFile(dir)).toBe(String(started.child.pid));
    },
    START_MS,
  );

  it(
    "a second live process on the directory exits 1 naming the holder; after the holder stops, a start succeeds",
    async () => {
      const dir = newDataDir();
      const first = startBrewcast(dir);
      await first.listening;

      const second = startBrewcast(dir);
      const outcome = await Promise.race([
        second.exited.then((code) => `exited ${code}`),
        second.listening.then(() => "listening"),
      ]);
      expect(outcome).toBe("exited 1");
      expect(second.stderr()).toBe(
        `brewcast: BREWCAST_DATA_DIR=${dir} is in use by process ${first.child.pid}; the embedded database serves one process (set DATABASE_URL to share a Postgres server)\n`,
      );
      expect(first.child.exitCode).toBeNull();
      expect(lockFile(dir)).toBe(String(first.child.pid));

      // A graceful stop releases the lock.
      first.child.kill("SIGTERM");
      expect(await first.exited).toBe(0);
      const third = startBrewcast(dir);
      await third.listening;
    },
    3 * START_MS,
  );

  it("in one process: a second lock on the directory is refused until the first is released", () => {
    const dir = newDataDir();
    const unlock = lockDataDir(dir);
    expect(() => lockDataDir(dir)).toThrow(`BREWCAST_DATA_DIR=${dir} is in use by process ${process.pid};`);
    unlock();
    unlock(); // twice is harmless
    const again = lockDataDir(dir);
    again();
  });
});
