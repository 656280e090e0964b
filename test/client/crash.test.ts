/**
 * A consumer process killed with SIGKILL while it hands out events, then
 * restarted on the same file store: every event is handed out, in order,
 * and at most the one being handled at the kill is handed out twice.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { SeededPartner } from "../support/fixtures.ts";
import { appendEvents, readAll, type System, startSystem } from "./helpers.ts";

let system: System;
let tmp: string;

beforeAll(async () => {
  system = await startSystem({ watermarkMs: 200 });
  tmp = mkdtempSync(path.join(os.tmpdir(), "brewcast-crash-"));
}, 120_000);

afterAll(async () => {
  await system?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const child = (partner: SeededPartner, store: string) => {
  const proc: ChildProcess = spawn(process.execPath, ["--import", "tsx", "test/client/consumer-child.ts"], {
    cwd: path.resolve(import.meta.dirname, "../.."),
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      CHILD_API: system.apiUrl,
      CHILD_MQTT: system.mqttUrl,
      CHILD_ID: partner.backend.id,
      CHILD_SECRET: partner.backend.secret,
      CHILD_PARTNER: partner.id,
      CHILD_STORE: store,
    },
  });
  const seqs: number[] = [];
  const waiters: { test: () => boolean; resolve: () => void }[] = [];
  let partial = "";
  let stderr = "";
  const check = () => {
    for (const w of [...waiters]) {
      if (!w.test()) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  proc.stdout!.on("data", (chunk: Buffer) => {
    partial += chunk.toString();
    const lines = partial.split("\n");
    partial = lines.pop()!;
    for (const line of lines) if (line) seqs.push(Number(line));
    check();
  });
  proc.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    check();
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const until = (test: () => boolean, what: string) =>
    test()
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          waiters.push({ test, resolve });
          void exited.then(() => reject(new Error(`child exited before ${what}: ${stderr}`)));
        });
  return { proc, seqs, until, stderr: () => stderr, exited };
};

it("resumes after SIGKILL from the file store, handing out at most the event in progress twice", async () => {
  const partner = await system.seed(2);
  await appendEvents(system, partner.id, partner.shops, 300);
  const store = path.join(tmp, "position.json");

  const first = child(partner, store);
  await first.until(() => first.seqs.length >= 100, "100 events");
  first.proc.kill("SIGKILL");
  await first.exited;
  const saved = JSON.parse(readFileSync(store, "utf8")) as { seq: number };
  const lastPrinted = first.seqs.at(-1)!;
  // The position is saved after the handler: it is the last printed seq or the one before.
  expect([lastPrinted, lastPrinted - 1]).toContain(saved.seq);

  const second = child(partner, store);
  await second.until(() => second.stderr().includes("live"), "live");
  await appendEvents(system, partner.id, partner.shops, 50, 10);
  await second.until(() => second.seqs.at(-1) === 350, "seq 350");
  second.proc.kill("SIGTERM");
  await second.exited;

  const expected = (await readAll(system.apiUrl, partner.backend.secret)).map((e) => e.seq);
  const replayed = second.seqs[0] === lastPrinted ? 1 : 0;
  expect(second.seqs[0]).toBe(saved.seq + 1);
  expect([...first.seqs, ...second.seqs.slice(replayed)]).toEqual(expected);
}, 60_000);
