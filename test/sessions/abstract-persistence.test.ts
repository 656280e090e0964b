/**
 * Runs aedes-persistence's own conformance suite against brewcast's session
 * persistence (abstract-persistence.node.ts, under node:test as the suite is
 * written) and reads its TAP report: every test passes except the listed
 * departures (abstract-departures.ts), and each of those really fails, so a
 * departure that starts passing, or a new failure, is noticed.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { DEPARTURES } from "./abstract-departures.ts";

const RUNNER = fileURLToPath(new URL("./abstract-persistence.node.ts", import.meta.url));

const runSuite = (): Promise<string> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "--test", "--test-reporter=tap", RUNNER], {
      env: process.env,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let tap = "";
    child.stdout.on("data", (chunk: Buffer) => {
      tap += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", () => resolve(tap));
  });

it("passes aedes-persistence's abstract suite but for the listed departures, which fail", async () => {
  const tap = await runSuite();
  // Top-level results only: "ok 3 - name" or "not ok 18 - name # TODO reason".
  const results = [...tap.matchAll(/^(not ok|ok) \d+ - (.+?)(?: # TODO .*)?$/gm)].map(([, status, name]) => ({
    name: name!.replaceAll("\\#", "#"),
    ok: status === "ok",
  }));
  expect(results.length).toBeGreaterThanOrEqual(50);
  const failed = results.filter((r) => !r.ok).map((r) => r.name);
  expect(failed.sort()).toEqual(Object.keys(DEPARTURES).sort());
}, 120_000);
