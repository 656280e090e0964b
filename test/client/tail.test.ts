/**
 * `brewcast tail` end to end: the real CLI as a child process against the
 * whole system running in this process; JSON lines on stdout, --count,
 * --shop with a device credential, and exit status 3 on a resync. Its
 * stderr is a pipe, not a terminal: what goes wrong is said there all the
 * same, and what cannot heal exits 1.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import type { OrderEvent } from "../../src/domain/events.ts";
import { runCli } from "../support/brewcast-process.ts";
import { freePort } from "../support/ports.ts";
import { appendEvents, readAll, type System, startSystem } from "./helpers.ts";

let system: System;
let tmp: string;

beforeAll(async () => {
  system = await startSystem({ watermarkMs: 200 });
  tmp = mkdtempSync(path.join(os.tmpdir(), "brewcast-tail-"));
}, 120_000);

afterAll(async () => {
  await system?.close();
  rmSync(tmp, { recursive: true, force: true });
});

interface Tail {
  child: ChildProcess;
  lines: OrderEvent[];
  stderr: () => string;
  /** Resolves when at least n lines were printed. */
  printed(n: number): Promise<void>;
  /** Resolves when stderr matches; rejects when tail exits first or after 20 s. */
  said(pattern: RegExp): Promise<void>;
  exit: Promise<number | null>;
  /** The exit status, or a failure if tail is still running after 20 s. */
  exited(): Promise<number | null>;
}

/** The arguments that point `brewcast tail` at the test system with a credential. */
const connection = (credential: { id: string; secret: string }): string[] => [
  "--api",
  system.apiUrl,
  "--mqtt",
  system.mqttUrl,
  "--id",
  credential.id,
  "--secret",
  credential.secret,
];

const tail = (args: string[]): Tail => {
  const child = spawn(process.execPath, ["bin/brewcast.js", "tail", ...args], {
    cwd: path.resolve(import.meta.dirname, "../.."),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: OrderEvent[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  let partial = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    partial += chunk.toString();
    const parts = partial.split("\n");
    partial = parts.pop()!;
    for (const line of parts) if (line) lines.push(JSON.parse(line) as OrderEvent);
    for (const w of [...waiters]) {
      if (lines.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  let err = "";
  const listeners = new Set<() => void>();
  child.stderr!.on("data", (chunk: Buffer) => {
    err += chunk.toString();
    for (const listener of [...listeners]) listener();
  });
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const within = <T>(what: string, promise: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`tail: no ${what} within 20 s; stderr: ${err}`)), 20_000);
      }),
    ]).finally(() => clearTimeout(timer));
  };
  cleanups.push(child);
  return {
    child,
    lines,
    stderr: () => err,
    printed: (n) =>
      lines.length >= n
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            waiters.push({ n, resolve });
            void exit.then((code) =>
              reject(new Error(`tail exited (${code}) after ${lines.length} lines: ${err}`)),
            );
          }),
    said: (pattern) =>
      within(
        `${pattern}`,
        new Promise<void>((resolve, reject) => {
          const check = () => {
            if (!pattern.test(err)) return;
            listeners.delete(check);
            resolve();
          };
          listeners.add(check);
          check();
          void exit.then((code) =>
            reject(new Error(`tail exited (${code}) before saying ${pattern}: ${err}`)),
          );
        }),
      ),
    exit,
    exited: () => within("exit", exit),
  };
};

const cleanups: ChildProcess[] = [];
afterEach(async () => {
  for (const child of cleanups.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await new Promise((resolve) => child.once("exit", resolve));
    }
  }
});

it("prints history then live events as JSON lines, once and in order, and exits after --count", async () => {
  const partner = await system.seed(2);
  await appendEvents(system, partner.id, partner.shops, 30);
  const t = tail([...connection(partner.backend), "--watermark", "200", "--count", "50"]);
  await t.printed(30);
  await appendEvents(system, partner.id, partner.shops, 40, 5);
  expect(await t.exit).toBe(0);
  const expected = (await readAll(system.apiUrl, partner.backend.secret)).slice(0, 50);
  expect(t.lines).toEqual(expected);
}, 60_000);

it("follows one shop with a device credential, starting --after a seq", async () => {
  const partner = await system.seed(2);
  await appendEvents(system, partner.id, partner.shops, 40);
  const device = partner.devices[1]!;
  const t = tail([...connection(device), "--shop", partner.shops[1]!, "--after", "20", "--count", "10"]);
  expect(await t.exit).toBe(0);
  const expected = (await readAll(system.apiUrl, device.secret)).filter((e) => e.seq > 20);
  expect(t.lines.map((e) => e.seq)).toEqual(expected.map((e) => e.seq));
  expect(t.lines.every((e) => e.shop_id === partner.shops[1])).toBe(true);
}, 60_000);

it("exits with status 3 when the stored position belongs to another log", async () => {
  const partner = await system.seed(1);
  await appendEvents(system, partner.id, partner.shops, 3);
  const store = path.join(tmp, "other-epoch.json");
  writeFileSync(store, JSON.stringify({ seq: 1, epoch: "00000000-0000-4000-8000-000000000000" }));
  const t = tail([...connection(partner.backend), "--store", store]);
  expect(await t.exit).toBe(3);
  expect(t.stderr()).toMatch(/resync needed/);
  expect(t.lines).toEqual([]);
}, 60_000);

it("exits 1 with the answer on stderr when the credential may not read the --shop (404)", async () => {
  const partner = await system.seed(2);
  await appendEvents(system, partner.id, partner.shops, 2);
  const t = tail([...connection(partner.devices[0]!), "--shop", partner.shops[1]!]);
  expect(await t.exited()).toBe(1);
  expect(t.stderr()).toMatch(/^brewcast tail: GET \/v1\/events: 404 NOT_FOUND: no shop shop-2$/m);
  expect(t.lines).toEqual([]);
}, 60_000);

it("exits 1 when --partner names a partner the credential does not belong to", async () => {
  const partner = await system.seed(1);
  const other = await system.seed(1);
  const t = tail([...connection(partner.devices[0]!), "--shop", partner.shops[0]!, "--partner", other.id]);
  expect(await t.exited()).toBe(1);
  expect(t.stderr()).toContain(
    `subscription to partners/${other.id}/shops/${partner.shops[0]}/orders/+ refused`,
  );
}, 60_000);

it("says on stderr that the --mqtt port refuses connections, and keeps reading the history", async () => {
  const partner = await system.seed(1);
  await appendEvents(system, partner.id, partner.shops, 3);
  const closed = await freePort();
  const args = connection(partner.backend);
  args[args.indexOf("--mqtt") + 1] = `mqtt://127.0.0.1:${closed}`;
  const t = tail(args);
  await t.said(/^brewcast tail: mqtt: connect ECONNREFUSED 127\.0\.0\.1:\d+ \(retrying in \d+ ms/m);
  await t.printed(3);
  // Said once, not at every reconnect.
  expect(t.stderr().match(/ECONNREFUSED/g)).toHaveLength(1);
  t.child.kill("SIGTERM");
  expect(await t.exited()).toBe(0);
}, 60_000);

it("says that --after is past the head instead of waiting silently", async () => {
  const partner = await system.seed(1);
  await appendEvents(system, partner.id, partner.shops, 2);
  const t = tail([...connection(partner.backend), "--watermark", "200", "--after", "50"]);
  await t.said(/^brewcast tail: position 50 is past the head of the log \(2\): waiting for seq 51$/m);
  t.child.kill("SIGTERM");
  expect(await t.exited()).toBe(0);
}, 60_000);

it("--help: the synopsis names every option the list below it explains", async () => {
  const { code, stdout } = await runCli(["tail", "--help"], {});
  expect(code).toBe(0);
  const [synopsis, ...rest] = stdout.split("\n\n");
  const explained = [...rest.join("\n\n").matchAll(/^ {2}(--[a-z]+)/gm)].map((m) => m[1]!);
  expect(explained).toContain("--watermark");
  for (const flag of explained) expect(synopsis, flag).toContain(flag);
});
