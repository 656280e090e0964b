/**
 * Every other config in mosquitto/ (the partner broker of docker-compose.yml)
 * starts with a real `mosquitto -c`: only its container paths and port are
 * pointed at a scratch directory, and its include_dir holds the shipped
 * partner-bridge.conf (aimed at a port nobody listens on), as in compose.
 */
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  hasCommand,
  type RunningMosquitto,
  runMosquitto,
  scratchDir,
  writeConfig,
} from "../support/mosquitto.ts";
import { freePort } from "../support/ports.ts";
import { MOSQUITTO_DIR, readShipped, renderPartnerBridge } from "./mosquitto.ts";

const others = readdirSync(MOSQUITTO_DIR).filter(
  (file) => file.endsWith(".conf") && file !== "partner-bridge.conf",
);
const available = hasCommand("mosquitto", ["-h"]);
if (!available) {
  process.stdout.write(
    "test/ops/mosquitto-configs.test.ts: mosquitto not installed (Debian: mosquitto); skipped\n",
  );
}

describe.skipIf(!available)("mosquitto/*.conf start with mosquitto -c", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("ships at least the partner broker of docker-compose.yml", () => {
    expect(others).toContain("partner-broker.conf");
  });

  it.each(others)("%s", async (file) => {
    const scratch = scratchDir();
    cleanups.push(() => scratch.remove());
    const port = await freePort();
    const confD = join(scratch.dir, "conf.d");
    mkdirSync(confD, { mode: 0o755 });
    writeConfig(
      join(confD, "brewcast.conf"),
      renderPartnerBridge(readShipped("partner-bridge.conf"), {
        partner: "acme",
        address: `127.0.0.1:${await freePort()}`,
        username: "cr-test",
        password: "bcs_test",
        clientId: "acme-config-test",
      }),
    );
    const rendered = readShipped(file)
      .split("\n")
      .map((line) => {
        if (/^listener \d+/.test(line)) return `listener ${port} 127.0.0.1`;
        if (line.startsWith("persistence_location ")) return `persistence_location ${scratch.dir}/`;
        if (line.startsWith("include_dir ")) return `include_dir ${confD}`;
        if (line.startsWith("log_dest ")) return "log_dest stderr";
        return line;
      })
      .join("\n");
    expect(rendered, "the config declares a listener").toMatch(new RegExp(`^listener ${port} `, "m"));
    const conf = writeConfig(join(scratch.dir, file), rendered);
    let mosquitto: RunningMosquitto | undefined;
    cleanups.push(() => mosquitto?.stop());
    mosquitto = await runMosquitto(conf, port);
    // No error but the bridge's own: its brewcast address has no listener here.
    const errors = mosquitto
      .output()
      .split("\n")
      .filter((line) => /error/i.test(line) && !/connection refused|bridge/i.test(line));
    expect(errors).toEqual([]);
    // The bridge file was loaded with it.
    expect(mosquitto.output()).toContain("brewcast.conf");
  });
});
