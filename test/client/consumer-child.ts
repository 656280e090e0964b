/**
 * A consumer in its own process, for the crash test: prints each event's seq
 * on stdout from its handler (a pipe write is synchronous on Linux, so the
 * line is out before the position is saved), with the file store.
 *
 *   node --import tsx test/client/consumer-child.ts   (settings in CHILD_* variables)
 */
import { createConsumer, createFileStore } from "../../src/client/index.ts";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const consumer = createConsumer({
  apiUrl: env("CHILD_API"),
  mqttUrl: env("CHILD_MQTT"),
  credentialId: env("CHILD_ID"),
  secret: env("CHILD_SECRET"),
  partner: env("CHILD_PARTNER"),
  store: createFileStore(env("CHILD_STORE")),
  name: "crash",
  watermarkMs: 200,
  reconnectMs: 100,
});
consumer.on("live", ({ seq }) => process.stderr.write(`live ${seq}\n`));
await consumer.run((event) => {
  process.stdout.write(`${event.seq}\n`);
});
