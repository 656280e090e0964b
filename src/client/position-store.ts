/**
 * Where a consumer keeps its position: the seq of the last event its handler
 * finished, and the epoch of the log that seq belongs to.
 *
 * The interface is two methods so that an application can keep the position
 * next to its own data (in the same transaction as its side effects, ideally).
 * Two stores ship: in memory, and a JSON file written atomically (a temporary
 * file, fsync, rename, fsync of the directory), so a crash leaves either the
 * old position or the new one, never a torn file.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";

export interface Position {
  /** The seq of the last event handed out and handled (0: none yet). */
  seq: number;
  /** The log `seq` belongs to; null until the consumer has seen one. */
  epoch: string | null;
}

export interface PositionStore {
  /** The saved position, or null when nothing was saved yet. */
  load(): Promise<Position | null>;
  /** Called after each handled event; the consumer waits for it before the next one. */
  save(position: Position): Promise<void>;
}

export const createMemoryStore = (
  initial: Position | null = null,
): PositionStore & { current: Position | null } => {
  const store = {
    current: initial ? { ...initial } : null,
    async load() {
      return store.current ? { ...store.current } : null;
    },
    async save(position: Position) {
      store.current = { ...position };
    },
  };
  return store;
};

const isPosition = (value: unknown): value is Position => {
  const v = value as Position;
  return (
    typeof v === "object" &&
    v !== null &&
    Number.isSafeInteger(v.seq) &&
    v.seq >= 0 &&
    (v.epoch === null || typeof v.epoch === "string")
  );
};

export interface FileStoreOptions {
  /** fsync the file and its directory on every save (default true). Off trades durability for speed. */
  fsync?: boolean;
}

/** A position in one JSON file, replaced atomically on every save. */
export const createFileStore = (file: string, options: FileStoreOptions = {}): PositionStore => {
  const fsync = options.fsync ?? true;
  const dir = path.dirname(path.resolve(file));
  let dirReady = false;
  return {
    async load() {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw error;
      }
      const parsed: unknown = JSON.parse(text);
      if (!isPosition(parsed)) throw new Error(`${file}: not a consumer position: ${text.slice(0, 200)}`);
      return { seq: parsed.seq, epoch: parsed.epoch };
    },
    async save(position) {
      if (!dirReady) {
        await mkdir(dir, { recursive: true });
        dirReady = true;
      }
      const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
      const body = `${JSON.stringify({ seq: position.seq, epoch: position.epoch })}\n`;
      try {
        const handle = await open(tmp, "w", 0o600);
        try {
          await handle.writeFile(body, "utf8");
          if (fsync) await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(tmp, file);
      } catch (error) {
        await rm(tmp, { force: true });
        throw error;
      }
      if (fsync) {
        // The rename is durable only once the directory entry is.
        const dirHandle = await open(dir, "r");
        try {
          await dirHandle.sync();
        } finally {
          await dirHandle.close();
        }
      }
    },
  };
};
