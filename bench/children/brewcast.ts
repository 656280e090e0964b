/**
 * The brewcast child (lib/children.ts `spawnKid("brewcast")`): `startBrewcast(config, log,
 * BENCH_ROLE)` (role "all" by default), plus a paced writer in the same process (the API's place)
 * that hands each committed event to `internalsOf(running).committed`, which is the API's
 * `onCommitted` (the leading bridge takes the event in-process; otherwise the doorbell rings).
 * Each commit also goes to the floor's relay (lib/relay.ts) and, with BENCH_HTTP_FLOOR_URL, to the
 * webhook bench's latency floor (bench/webhook-kit.ts `createHttpFloor`: each commit POSTed with
 * undici at once). The HTTP floor and brewcast take turns at going first (by the event's seq:
 * odd, brewcast first; even, the floor first): sharing one event loop and one receiver, whoever
 * goes first has its request written first and answered first, and the other waits behind it.
 *
 * Commands: write, relay, loop, memory, broker-stats, profile-start, profile-stop.
 */
import { memoryOf, watchEventLoop, windowProfiler } from "../lib/child-tools.ts";
import { runChild, serveRpc } from "../lib/children.ts";
import { createRelay } from "../lib/relay.ts";
import { makeAppender, productModule, runWriter, type WriteRequest } from "../lib/writer.ts";

runChild("brewcast", async () => {
  const { loadConfig } =
    await productModule<typeof import("../../src/config/load-config.ts")>("config/load-config");
  const { createLogger } = await productModule<typeof import("../../src/log.ts")>("log");
  const { internalsOf, startBrewcast } = await productModule<typeof import("../../src/main.ts")>("main");
  const { createDoorbell } =
    await productModule<typeof import("../../src/store/doorbell.ts")>("store/doorbell");
  const role = (process.env.BENCH_ROLE ?? "all") as "all" | "bridge" | "broker";
  const { config } = loadConfig({
    BREWCAST_HTTP_PORT: "0",
    BREWCAST_MQTT_PORT: "0",
    LOG_LEVEL: "warn",
    ...process.env,
  });
  const logger = createLogger(config.LOG_LEVEL);
  const running = await startBrewcast(config, logger, role);
  const internals = internalsOf(running);
  const doorbell = createDoorbell(internals.db);
  const loop = watchEventLoop();
  const relay = createRelay();
  // The webhook bench's latency floor (bench/webhook-kit.ts): each commit POSTed with undici at once.
  const httpFloor = process.env.BENCH_HTTP_FLOOR_URL
    ? (await import("../webhook-kit.ts")).createHttpFloor(process.env.BENCH_HTTP_FLOOR_URL)
    : undefined;
  const profiler = windowProfiler();
  let writer: Awaited<ReturnType<typeof makeAppender>> | undefined;
  let wakeMode: WriteRequest["wake"] = "inproc";
  serveRpc(
    { http: running.ports.http, mqtt: running.ports.mqtt ?? null, adminToken: running.adminToken },
    async (cmd, args) => {
      if (cmd === "loop") return loop.take();
      if (cmd === "relay") return { port: await relay.listen() };
      if (cmd === "memory") return memoryOf(Boolean((args as { gc?: boolean } | undefined)?.gc));
      if (cmd === "broker-stats") return internals.broker?.stats() ?? null;
      if (cmd === "profile-start") return profiler.start();
      if (cmd === "profile-stop") return profiler.stop((args as { file: string }).file);
      if (cmd !== "write") throw new Error(`unknown command ${cmd}`);
      const request = args as WriteRequest;
      wakeMode = request.wake;
      writer ??= await makeAppender((event) => {
        relay.send(event);
        const floorFirst = event.seq % 2 === 0;
        if (floorFirst) httpFloor?.send(event);
        if (wakeMode === "inproc") internals.committed(event);
        else if (wakeMode === "doorbell") doorbell.ring(event);
        if (!floorFirst) httpFloor?.send(event);
      });
      return runWriter(request, writer.appender);
    },
    async () => {
      await relay.close();
      await httpFloor?.close();
      await doorbell.flush();
      await writer?.db.close();
      await running.stop();
    },
  );
});
