/**
 * The `brewcast` command: start, migrate, check-config, tail.
 */
import { parseArgs } from "node:util";
import { TAIL_USAGE, USAGE } from "./cli-usage.ts";
import { createConsumer, createFileStore, ResyncRequiredError } from "./client/index.ts";
import { ConfigError, loadConfig, redactConfig } from "./config/load-config.ts";
import { createLogger } from "./log.ts";
import { openMigratedDb, startBrewcast } from "./main.ts";

const COMMANDS = new Set(["start", "broker", "bridge", "migrate", "check-config"]);

const fail = (message: string): never => {
  process.stderr.write(`brewcast: ${message}\n`);
  process.exit(1);
};

const nonNegativeInt = (flag: string, value: string | undefined): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) fail(`--${flag} must be a non-negative integer`);
  return n;
};

/** `brewcast tail`: the consumer SDK with a JSON-lines handler. */
const tail = async (argv: string[]): Promise<void> => {
  const { values } = parseArgs({
    args: argv,
    options: {
      api: { type: "string" },
      mqtt: { type: "string" },
      id: { type: "string" },
      secret: { type: "string" },
      after: { type: "string" },
      count: { type: "string" },
      shop: { type: "string" },
      partner: { type: "string" },
      name: { type: "string" },
      store: { type: "string" },
      watermark: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(`${TAIL_USAGE}\n`);
    return;
  }
  for (const flag of ["api", "mqtt", "id", "secret"] as const) {
    if (!values[flag]) fail(`tail: --${flag} is required\n${TAIL_USAGE}`);
  }
  const count = nonNegativeInt("count", values.count);
  const after = nonNegativeInt("after", values.after);
  const watermarkMs = nonNegativeInt("watermark", values.watermark);
  const consumer = createConsumer({
    apiUrl: values.api!,
    mqttUrl: values.mqtt!,
    credentialId: values.id!,
    secret: values.secret!,
    name: values.name ?? "tail",
    // An empty --shop or --partner is refused by the SDK, not taken for "every shop".
    ...(values.shop !== undefined ? { shop: values.shop } : {}),
    ...(values.partner !== undefined ? { partner: values.partner } : {}),
    ...(after !== undefined ? { after } : {}),
    ...(watermarkMs ? { watermarkMs } : {}),
    ...(values.store ? { store: createFileStore(values.store) } : {}),
  });

  // A live status line on stderr when it is a terminal: state, seq, lag.
  const tty = process.stderr.isTTY;
  let statusAt = 0;
  const status = (force = false) => {
    if (!tty || (!force && Date.now() - statusAt < 200)) return;
    statusAt = Date.now();
    const s = consumer.status();
    const lagMs = s.lastOccurredAt ? Date.now() - Date.parse(s.lastOccurredAt) : null;
    process.stderr.write(
      `\r\x1b[2K[${s.phase}${s.connected ? "" : ", push down"}] seq ${s.seq} head ${s.head} lag ${s.head - s.seq} events${lagMs === null ? "" : ` / ${(lagMs / 1000).toFixed(1)} s`}`,
    );
  };
  // One line on stderr, above the status line when there is one.
  const say = (line: string) => {
    process.stderr.write(`${tty ? "\r\x1b[2K" : ""}brewcast tail: ${line}\n`);
    status(true);
  };
  if (tty) {
    for (const name of [
      "connecting",
      "connected",
      "disconnected",
      "live",
      "catching-up",
      "gap-filled",
      "cursor",
    ] as const)
      consumer.on(name, () => status(true));
  } else {
    // No status line: say the moves a reader of a log needs.
    consumer.on("live", ({ seq }) => say(`live at seq ${seq}`));
    consumer.on("disconnected", ({ reason }) => say(`push down (${reason}): reading the history meanwhile`));
  }
  // Errors go to stderr whatever it is. A failure that repeats (a refused MQTT port, every
  // reconnect) is said once until something else happens; the terminal one is said below.
  let lastError = "";
  consumer.on("error", ({ error, during, retryInMs, fatal }) => {
    if (fatal) return;
    const line = `${during}: ${error.message}`;
    if (line === lastError) return;
    lastError = line;
    say(`${line}${retryInMs === undefined ? "" : ` (retrying in ${retryInMs} ms; repeats are not shown)`}`);
  });
  for (const name of ["connected", "live"] as const) consumer.on(name, () => (lastError = ""));
  consumer.on("ahead", ({ seq, head }) =>
    say(`position ${seq} is past the head of the log (${head}): waiting for seq ${seq + 1}`),
  );

  let printed = 0;
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void consumer.stop();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  if (count === 0) return;
  try {
    await consumer.run(async (event) => {
      if (!process.stdout.write(`${JSON.stringify(event)}\n`)) {
        await new Promise((resolve) => process.stdout.once("drain", resolve));
      }
      printed++;
      status();
      // stop() waits for this handler, so the position ends at the Nth event.
      if (count !== undefined && printed >= count) stop();
    });
  } catch (error) {
    if (tty) process.stderr.write("\n");
    if (error instanceof ResyncRequiredError) {
      process.stderr.write(`brewcast tail: resync needed: ${error.message}\n`);
      process.exitCode = 3;
    } else {
      process.stderr.write(`brewcast tail: ${(error as Error).message}\n`);
      process.exitCode = 1;
    }
  }
  if (tty) process.stderr.write("\n");
  // Keep-alive HTTP sockets may linger: leave once stdout is flushed.
  process.stdout.write("", () => process.exit(process.exitCode ?? 0));
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
  if (command === "tail") return tail(argv.slice(argv.indexOf("tail") + 1));
  if (values.help || command === undefined || command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  // Before the configuration is read: an unknown command starts, logs and generates nothing.
  if (!COMMANDS.has(command)) fail(`unknown command '${command}'\n${USAGE}`);
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
