/**
 * `brewcast tail` end to end: the real CLI as a child process against the
 * whole system running in this process; JSON lines on stdout, --count,
 * --shop with a device credential, and exit status 3 on a resync.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { OrderEvent } from "../../src/domain/events.ts";
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
  exit: Promise<number | null>;
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
  child.stderr!.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
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
    exit,
  };
};

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
