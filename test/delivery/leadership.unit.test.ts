/**
 * Leadership over an in-memory leader lock (a stand-in of the Postgres
 * advisory lock of src/store/leader-lock.ts): one leader, standbys poll,
 * a lost lock steps down and tries again, every change bumps the term. No services.
 */
import pino from "pino";
import { describe, expect, it } from "vitest";
import { createLeadership, type DeliveryRole } from "../../src/delivery/leadership.ts";
import type { LeaderLock } from "../../src/domain/delivery.ts";
import { until as waitUntil } from "../support/wait.ts";

const silent = pino({ level: "silent" });

/** One lock shared by the "processes" of a test. */
const lockTable = () => {
  let holder: object | undefined;
  const locks: { lock: LeaderLock; lose: () => void }[] = [];
  const lockFor = () => {
    const me = {};
    let lost: () => void = () => {};
    const lock: LeaderLock = {
      async tryAcquire() {
        holder ??= me;
        return holder === me;
      },
      onLost(handler) {
        lost = handler;
      },
      async release() {
        if (holder === me) holder = undefined;
      },
    };
    const entry = {
      lock,
      lose: () => {
        if (holder === me) holder = undefined;
        lost();
      },
    };
    locks.push(entry);
    return entry;
  };
  return { lockFor };
};

/** The shared wait, with this file's bound. */
const until = (check: () => boolean): Promise<void> => waitUntil(check, 500);

const start = (lock: LeaderLock, calls: string[] = []) => {
  const roles: DeliveryRole[] = [];
  const leadership = createLeadership({
    lock,
    log: silent,
    standbyPollMs: 10,
    onRole: (role) => roles.push(role),
    prepare: async (term) => {
      calls.push(`prepare ${term}`);
    },
    begin: (term) => calls.push(`begin ${term}`),
    stepDown: async () => {
      calls.push("step down");
    },
  });
  return { leadership, roles, calls };
};

describe("leadership", () => {
  it("leads when it gets the lock: prepare, then the role, then begin, in one term", async () => {
    const table = lockTable();
    const { leadership, roles, calls } = start(table.lockFor().lock);
    await leadership.start();
    expect(leadership.role).toBe("leader");
    expect(roles).toEqual(["leader"]);
    expect(calls).toEqual(["prepare 1", "begin 1"]);
    expect(leadership.isCurrent(1)).toBe(true);
    await leadership.stop();
    expect(leadership.role).toBe("stopped");
    expect(leadership.isCurrent(1)).toBe(false);
  });

  it("stands by while another holds the lock and takes over once it is released", async () => {
    const table = lockTable();
    const first = start(table.lockFor().lock);
    const second = start(table.lockFor().lock);
    await first.leadership.start();
    await second.leadership.start();
    expect(second.leadership.role).toBe("standby");
    await first.leadership.stop();
    await until(() => second.leadership.role === "leader");
    await second.leadership.stop();
  });

  it("steps down at once when the lock is lost, then leads again in a new term", async () => {
    const table = lockTable();
    const entry = table.lockFor();
    const { leadership, roles, calls } = start(entry.lock);
    await leadership.start();
    entry.lose();
    expect(leadership.role).toBe("standby");
    expect(leadership.isCurrent(1)).toBe(false);
    await until(() => leadership.role === "leader");
    expect(roles).toEqual(["leader", "standby", "leader"]);
    expect(calls).toEqual([
      "prepare 1",
      "begin 1",
      "step down",
      `prepare ${leadership.term}`,
      `begin ${leadership.term}`,
    ]);
    await leadership.stop();
  });

  it("a prepare that fails releases the lock and tries again", async () => {
    const table = lockTable();
    const entry = table.lockFor();
    let failures = 1;
    const leadership = createLeadership({
      lock: entry.lock,
      log: silent,
      standbyPollMs: 10,
      onRole: () => {},
      prepare: async () => {
        if (failures-- > 0) throw new Error("database not ready");
      },
      begin: () => {},
      stepDown: async () => {},
    });
    await leadership.start();
    expect(leadership.role).not.toBe("leader");
    // The lock was released: another process could have taken it.
    expect(await table.lockFor().lock.tryAcquire()).toBe(true);
    await leadership.stop();
  });
});
