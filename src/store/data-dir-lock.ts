/**
 * One process owns an embedded data directory. The lock is a kernel file
 * lock on `<dir>/brewcast.lock` (fcntl F_OFD_SETLK on Linux, flock on macOS,
 * LockFileEx on Windows, through fs-native-extensions, which ships prebuilt
 * binaries). The kernel drops it the moment the holder dies, even while the
 * dead process is still an unreaped zombie. The PID written into the file
 * only names the holder in the refusal message; it is never used to decide.
 * A PID check was wrong after a crash (a zombie still looks alive), in
 * containers (the new process has the old PID, often 1) and after PID reuse.
 *
 * Why not a socket:
 * - An abstract Unix socket exists per network namespace, so two containers
 *   sharing one volume would both get it.
 * - A socket file in the directory needs its own protocol to replace a stale
 *   socket without two starters racing. Its path is limited to ~100 bytes,
 *   and some bind mounts (Docker Desktop) cannot hold socket files.
 * A file lock is atomic and works across containers on one host. Node has no
 * flock of its own, hence the dependency.
 */
import { closeSync, constants, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

interface FsNativeExtensions {
  /** Takes an exclusive lock on the whole file; false when another open file holds it. */
  tryLock(fd: number): boolean;
}

/** "process <pid>" from the lock file, for the refusal message. */
const holderOf = (lockPath: string): string => {
  try {
    // The holder writes its PID right after it locks, so the file can be empty for a moment.
    const pid = readFileSync(lockPath, "utf8").trim();
    if (pid) return `process ${pid}`;
  } catch {
    // Windows locks are mandatory: the holder's file cannot be read.
  }
  return "another process";
};

/**
 * Locks `<dir>/brewcast.lock` for this process and returns the unlock
 * function, or throws naming the live process that holds it.
 */
export const lockDataDir = (dir: string): (() => void) => {
  // Loaded here, not at import time, so that a DATABASE_URL setup never needs the native addon.
  const require = createRequire(import.meta.url);
  const { tryLock } = require("fs-native-extensions") as FsNativeExtensions;
  const lockPath = join(dir, "brewcast.lock");
  // Opened without O_TRUNC, which would wipe a live holder's PID. Never deleted: a starter that
  // opened the file before an unlink would lock the orphan while the next one locks a new file.
  const fd = openSync(lockPath, constants.O_RDWR | constants.O_CREAT);
  let locked: boolean;
  try {
    locked = tryLock(fd);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  if (!locked) {
    closeSync(fd);
    throw new Error(
      `BREWCAST_DATA_DIR=${dir} is in use by ${holderOf(lockPath)}; the embedded database serves one process (set DATABASE_URL to share a Postgres server)`,
    );
  }
  ftruncateSync(fd, 0);
  writeSync(fd, String(process.pid), 0);
  // Closing the file descriptor releases the lock; the file stays (see above). Once only:
  // a second close could hit a descriptor the number was reused for.
  let open = true;
  return () => {
    if (open) closeSync(fd);
    open = false;
  };
};
