/**
 * The consumers of the event stream bench (bench/sse-latency.ts, `spawnKid("sse-consumers")`), in
 * one process of their own: per partner one raw-socket MQTT 3.1.1 subscriber at QoS 1
 * (bench/raw-mqtt.ts) on `partners/{p}/shops/+/orders/+`, and one SSE client (plain node:http,
 * `Authorization: Bearer`, text/event-stream parsed by hand; `event: cursor` messages ignored),
 * plus the floor's reader (lib/relay.ts). Each receipt is timed when the chunk holding it arrived.
 *
 * Commands: connect, reset, latency.
 */
import http from "node:http";
import { runChild, serveRpc } from "../lib/children.ts";
import { nowMs } from "../lib/machine.ts";
import { Receipts } from "../lib/receipts.ts";
import { readRelay } from "../lib/relay.ts";
import type { Commits } from "../lib/writer.ts";
import { connectRawClient, publishPayload, publishTopic } from "../raw-mqtt.ts";
import { latencyOf } from "../webhook-kit.ts";

const log = (line: string) => process.stderr.write(`[sse-consumers] ${line}\n`);

export interface ConsumerSpec {
  baseUrl: string;
  mqttPort: number;
  relayPort: number;
  partners: { id: string; credentialId: string; secret: string }[];
}

runChild("sse-consumers", async () => {
  const receipts = {
    sse: new Receipts(),
    mqtt: new Receipts(),
    floor: new Receipts(),
  };
  let sseOpen = 0;
  let sseEnded = 0;
  let cursors = 0;

  /** One SSE client: a GET that never ends, messages split on blank lines. */
  const openStream = (baseUrl: string, secret: string) =>
    new Promise<void>((resolve, reject) => {
      const req = http.get(
        `${baseUrl}/v1/events/stream?after=0`,
        { headers: { authorization: `Bearer ${secret}`, accept: "text/event-stream" } },
        (res) => {
          if (res.statusCode !== 200) {
            reject(new Error(`stream: HTTP ${res.statusCode}`));
            res.resume();
            return;
          }
          res.socket.setNoDelay(true);
          sseOpen++;
          resolve();
          let rest = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            const t = nowMs();
            const messages = (rest + chunk).split("\n\n");
            rest = messages.pop()!;
            for (const message of messages) {
              let data: string | undefined;
              let named = false;
              for (const line of message.split("\n")) {
                if (line.startsWith("data: ")) data = line.slice(6);
                else if (line.startsWith("event: ")) named = true;
              }
              if (named) {
                cursors++;
                continue;
              }
              if (data === undefined) continue;
              const event = JSON.parse(data) as { partner_id: string; seq: number };
              receipts.sse.record(event.partner_id, event.seq, t);
            }
          });
          res.on("end", () => {
            sseOpen--;
            sseEnded++;
            log(`an event stream ended (${sseEnded} so far)`);
          });
        },
      );
      req.on("error", reject);
    });

  const connect = async (spec: ConsumerSpec) => {
    for (const partner of spec.partners) {
      const client = await connectRawClient({
        host: "127.0.0.1",
        port: spec.mqttPort,
        clientId: `sse-bench-${partner.id}-${process.pid}`,
        username: partner.credentialId,
        password: partner.secret,
      });
      client.onPublish = (body, qos) => {
        if (!publishTopic(body).includes("/orders/")) return;
        const t = nowMs();
        const event = JSON.parse(publishPayload(body, qos).toString()) as { partner_id: string; seq: number };
        receipts.mqtt.record(event.partner_id, event.seq, t);
      };
      client.socket.on("error", (error) => log(`subscriber error: ${error.message}`));
      await client.subscribe([`partners/${partner.id}/shops/+/orders/+`], 1);
      await openStream(spec.baseUrl, partner.secret);
    }
    await readRelay(spec.relayPort, (partner, seq, t) => receipts.floor.record(partner, seq, t));
    return { sseOpen };
  };

  serveRpc({}, async (cmd, args) => {
    switch (cmd) {
      case "connect":
        return connect(args as ConsumerSpec);
      case "reset":
        for (const channel of Object.values(receipts)) channel.reset();
        cursors = 0;
        return null;
      case "latency": {
        const commits = args as Commits;
        return {
          sse: latencyOf(commits, receipts.sse),
          mqtt: latencyOf(commits, receipts.mqtt),
          floor: latencyOf(commits, receipts.floor),
          sseOpen,
          sseEnded,
          cursors,
        };
      }
      default:
        throw new Error(`unknown command ${cmd}`);
    }
  });
});
