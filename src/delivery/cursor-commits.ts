/**
 * Commits the durable cursors of every partner together, in one statement
 * (the log's `commitCursors`), and one commit at a time: a call while one is
 * in flight waits for it and then commits again. A durable cursor trails what
 * the channel accepted (by up to the core's commit interval), which after a
 * crash costs re-delivering (duplicates), never a gap. A failed commit puts
 * its cursors back for the next one.
 *
 * Imports domain types and this folder only.
 */
import type { DeliveryLog } from "../domain/delivery.ts";
import type { PartnerPosition } from "./partner-position.ts";

export interface CursorCommits {
  /** Commits every position that trails what was accepted; never rejects (failures go to `onError`). */
  commitAll(): Promise<void>;
  /** A commit is in flight (a tick may skip rather than queue behind it). */
  readonly busy: boolean;
}

export interface CursorCommitsOptions {
  log: Pick<DeliveryLog, "commitCursors">;
  positions: () => Iterable<PartnerPosition>;
  onError: (error: unknown, partners: number) => void;
}

export const createCursorCommits = ({ log, positions, onError }: CursorCommitsOptions): CursorCommits => {
  let committing: Promise<void> | undefined;
  const commitDue = async (): Promise<void> => {
    const due: {
      position: PartnerPosition;
      commit: NonNullable<ReturnType<PartnerPosition["takeCommit"]>>;
    }[] = [];
    for (const position of positions()) {
      const commit = position.takeCommit();
      if (commit) due.push({ position, commit });
    }
    if (due.length === 0) return;
    try {
      await log.commitCursors(due.map(({ commit }) => commit));
      for (const { position, commit } of due) position.committed(commit);
    } catch (error) {
      // Put them back: the next interval or the final flush commits them.
      for (const { position, commit } of due) position.restoreCommit(commit);
      onError(error, due.length);
    }
  };
  return {
    get busy() {
      return committing !== undefined;
    },
    commitAll() {
      const next = (committing ?? Promise.resolve()).then(commitDue);
      committing = next;
      void next.finally(() => {
        if (committing === next) committing = undefined;
      });
      return next;
    },
  };
};
