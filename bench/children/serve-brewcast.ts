/**
 * A server under test (lib/children.ts `spawnServer("brewcast")`): the whole process through
 * `startBrewcast`, configured by the usual variables (DATABASE_URL, BREWCAST_ADMIN_TOKEN,
 * LOG_LEVEL); ports default to 0 (any free one).
 */
import { loadConfig } from "../../src/config/load-config.ts";
import { createLogger } from "../../src/log.ts";
import { startBrewcast } from "../../src/main.ts";
import { runChild, serveUntilStopped } from "../lib/children.ts";

runChild("server brewcast", async () => {
  const { config } = loadConfig({
    BREWCAST_HTTP_PORT: "0",
    BREWCAST_MQTT_PORT: "0",
    LOG_LEVEL: "warn",
    ...process.env,
  });
  const running = await startBrewcast(config, createLogger(config.LOG_LEVEL));
  serveUntilStopped(running.ports.http, { adminToken: running.adminToken }, running.stop);
});
