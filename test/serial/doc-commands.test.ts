/**
 * The README's and docs/*.md's shell commands work as written: run top to
 * bottom in a fresh copy of this clone, with a clean environment and only
 * the ports changed (scripts/run-doc-commands.ts). `npm install` there warns
 * about no engine, the quick start's server stops with Ctrl-C, "Try it"
 * gets its event over MQTT and REST and stops the server with `kill`.
 * A block that cannot run here says why in a `<!-- not-run: … -->` comment;
 * this test lists them, so a new one is a decision, not an accident.
 */
import { describe, expect, it } from "vitest";
import { type DocRun, runDocCommands } from "../../scripts/run-doc-commands.ts";

describe("the documented shell commands", () => {
  let run: DocRun;

  it("run top to bottom from a fresh copy of the clone, only ports changed", async () => {
    run = await runDocCommands({ timeoutMs: 600_000 });
    for (const result of run.results) expect(result.status, `${result.file}:\n${result.output}`).toBe(0);
    expect(run.results.map((result) => result.file)).toEqual(["README.md"]);
    expect(run.ran.map((block) => block.file)).toContain("README.md");
  }, 900_000);

  it("show what they promise", () => {
    expect(run, "the run above failed").toBeDefined();
    const output = run.results.find((result) => result.file === "README.md")!.output;
    // npm install on Node 20: no package that wants another Node.
    expect(output).toContain("added ");
    expect(output).not.toContain("EBADENGINE");
    // Quick start: npm start in the foreground listens on the changed port, and Ctrl-C stops it.
    expect(output).toContain(`"http":${run.ports.http},"mqtt":${run.ports.mqtt}`);
    expect(output).toContain('"signal":"SIGINT","msg":"shutting down"');
    // Try it: the persistent session gets the event it missed; REST has it; kill stops the server.
    expect(output).toMatch(/partners\/acme\/shops\/downtown\/orders\/created \{"seq":1,/);
    expect(output).toMatch(/"head_seq":1,"epoch":/);
    expect(output).toContain('"signal":"SIGTERM","msg":"shutting down"');
    // Running it: npx brewcast works in a fresh clone; migrate says nothing was left to apply.
    expect(output).toContain('"unknownVariables": []');
    expect(output).toContain('"msg":"no migrations to apply: the database is up to date"');
    expect(output).toContain("### all commands done");
  });

  it("leave out only the blocks that say why", () => {
    expect(run, "the run above failed").toBeDefined();
    expect(run.notRun.map((block) => `${block.file}: ${block.notRun}`)).toEqual([
      "README.md: the stream never ends (test/stream runs it)",
      "docs/operations.md: needs a Docker daemon; test/ops/docker.test.ts checks the Dockerfile",
      "docs/operations.md: needs Docker Compose; test/ops/docker.test.ts checks docker-compose.yml",
      `docs/operations.md: api.brewcast.example stands for the brewcast you use; the README's "Try it" runs the same request`,
      "docs/operations.md: on your machine, once your Mosquitto loads the bridge file; test/ops/partner-bridge.test.ts runs that file",
    ]);
  });
});
