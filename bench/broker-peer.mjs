/**
 * One broker under benchmark, in its own process so that its CPU and RSS
 * can be read from /proc: `node bench/broker-peer.mjs brewcast|aedes`.
 * Prints one JSON line {"port": n} once listening. brewcast runs with a stub
 * verifier (every username is a backend credential of partner "bench"), so
 * the figures are the broker's, not the database's.
 *
 * Plain JavaScript on the compiled build (`npm run build`, as the Docker
 * image runs it), so that neither Node broker carries tsx's loader: it
 * added about 50 MiB to the RSS both brokers started from.
 */
import net from "node:net";
import { Aedes } from "aedes";
import pino from "pino";
import { startBroker } from "../dist/broker/index.js";

const kind = process.argv[2];
if (process.env.BENCH_PEER_MEMORY) {
  // Where the RSS is (diagnosis only): V8 heap, buffers outside it, the rest.
  setInterval(() => {
    const m = process.memoryUsage();
    const mib = (n) => (n / 1048576).toFixed(0);
    process.stderr.write(
      `memory rss ${mib(m.rss)} heapTotal ${mib(m.heapTotal)} heapUsed ${mib(m.heapUsed)} external ${mib(m.external)} arrayBuffers ${mib(m.arrayBuffers)}\n`,
    );
  }, 500).unref();
}
if (kind === "brewcast") {
  const broker = await startBroker({
    host: "127.0.0.1",
    mqttPort: 0,
    maxPacketBytes: 65_536,
    maxConnectionsPerPartner: 1_000_000,
    drainTimeoutMs: 10_000,
    offlineQueueMax: 10_000,
    sessionTtlSeconds: 3600,
    log: pino({ level: "silent" }),
    loginFailureLimit: 1_000_000,
    verifier: {
      verifySecret: async (credentialId) => ({
        ok: true,
        principal: { credentialId, partnerId: "bench", kind: "backend", shopId: null },
      }),
      verifyBearer: async () => ({ ok: false, refusal: "bad_credentials" }),
      verifyCertificate: async () => ({ ok: false, refusal: "bad_credentials" }),
    },
    accessChanges: { subscribe: () => () => undefined },
  });
  process.stdout.write(`${JSON.stringify({ port: broker.ports.mqtt })}\n`);
} else if (kind === "aedes") {
  const aedes = await Aedes.createBroker();
  const server = net.createServer(aedes.handle);
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
  });
} else {
  throw new Error("usage: broker-peer.mjs brewcast|aedes");
}
