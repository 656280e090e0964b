/**
 * The `brewcast` command: start, migrate, check-config.
 */
import { parseArgs } from "node:util";
import { ConfigError, loadConfig, redactConfig } from "./config/load-config.ts";
import { createLogger } from "./log.ts";
import { openMigratedDb, startBrewcast } from "./main.ts";

const USAGE = `usage: brewcast <command>

commands:
  start          run the API, the embedded MQTT broker and the bridge in one process
  broker         run the MQTT broker alone (several share REDIS_URL behind a TCP load balancer)
  bridge         run the bridge alone, publishing to BREWCAST_MQTT_URL
  migrate        apply pending database migrations and exit
  check-config   print the effective configuration (secrets redacted) and exit

Configuration is environment only; see the README's configuration table.`;

const fail = (message: string): never => {
  process.stderr.write(`brewcast: ${message}\n`);
  process.exit(1);
};

const readConfig = () => {
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) return fail(error.message);
    throw error;
  }
};

const main = async (argv: string[]): Promise<void> => {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: { help: { type: "boolean", short: "h" } },
  });
  const command = positionals[0];
  if (values.help || command === undefined || command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const { config, unknownVariables, warnings } = readConfig();

  if (command === "check-config") {
    process.stdout.write(
      `${JSON.stringify({ config: redactConfig(config), unknownVariables, warnings }, null, 2)}\n`,
    );
    return;
  }

  const log = createLogger(config.LOG_LEVEL);
  for (const name of unknownVariables)
    log.warn({ variable: name }, "unknown BREWCAST_ variable ignored (a typo?)");
  for (const warning of warnings) log.warn(warning);

  if (command === "migrate") {
    const db = await openMigratedDb(config, log);
    await db.close();
    return;
  }

  if (command === "start" || command === "broker" || command === "bridge") {
    log.info({ config: redactConfig(config), role: command }, "starting");
    const running = await startBrewcast(config, log, command === "start" ? "all" : command);
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "shutting down");
      const deadline = setTimeout(() => {
        log.error("shutdown took over 10 s; exiting");
        process.exit(1);
      }, 10_000);
      deadline.unref();
      running.stop().then(
        () => process.exit(0),
        (error) => {
          log.error({ err: error }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
    return;
  }

  fail(`unknown command '${command}'\n${USAGE}`);
};

main(process.argv.slice(2)).catch((error: unknown) => {
  // Expected start failures (port taken, bad data dir, database down) are one line, not a stack.
  fail(error instanceof Error ? error.message : String(error));
});
