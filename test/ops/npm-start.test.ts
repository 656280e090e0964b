/**
 * The README's way to run brewcast in the background, `npm start &`, and to
 * stop it, `kill` that pid: the signal npm receives must reach the server
 * (npm forwards it to its child, so the script must not leave a shell
 * between them), which then shuts down and frees its ports.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { afterEach, expect, it } from "vitest";
import { accepts } from "../support/ports.ts";
import { waitFor } from "../support/wait.ts";

const ROOT = new URL("../..", import.meta.url);
const groups: number[] = [];

afterEach(() => {
  // Whatever is left of the process group this test started (npm, a shell, the server).
  for (const pgid of groups.splice(0)) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

it("`npm start &` then `kill <its pid>` stops the server, which logs the signal and frees its ports", async () => {
  const npm = spawn("npm", ["start"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      BREWCAST_HTTP_PORT: "0",
      BREWCAST_MQTT_PORT: "0",
      BREWCAST_DATA_DIR: "memory://",
      BREWCAST_ADMIN_TOKEN: "npm-start-test-admin-token",
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, so that cleanup reaches a server npm failed to stop.
    detached: true,
  });
  groups.push(npm.pid!);
  let output = "";
  npm.stdout.on("data", (chunk) => {
    output += chunk;
  });
  npm.stderr.on("data", (chunk) => {
    output += chunk;
  });
  // "close": every holder of the pipes has exited, the server (npm's grandchild or child) included.
  const closed = once(npm, "close");
  await waitFor("brewcast to listen", () => output.includes('"msg":"listening"'), 60_000, 50);
  const listening = JSON.parse(output.split("\n").find((line) => line.includes('"msg":"listening"'))!) as {
    http: number;
    mqtt: number;
  };
  expect(await accepts(listening.http)).toBe(true);

  process.kill(npm.pid!, "SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    closed.then(() => "exited"),
    new Promise((resolve) => {
      timer = setTimeout(
        resolve,
        20_000,
        "the server kept running (and the pipes open) 20 s after npm's SIGTERM",
      );
    }),
  ]);
  clearTimeout(timer);
  expect(outcome, output).toBe("exited");
  expect(output).toContain('"signal":"SIGTERM","msg":"shutting down"');
  expect(await accepts(listening.http)).toBe(false);
  expect(await accepts(listening.mqtt)).toBe(false);
}, 90_000);
