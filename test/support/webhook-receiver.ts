/**
 * A real local webhook receiver (node:http on a free port of 127.0.0.1) that
 * records every request and answers as the test says; by default it echoes
 * verification challenges and answers 204 to deliveries.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export type ReceiverHandler = (request: ReceivedRequest, response: ServerResponse) => void;

export interface WebhookReceiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Replaces how the receiver answers. */
  answer(handler: ReceiverHandler): void;
  close(): Promise<void>;
}

/** Echoes `{"challenge"}` of a verification request; 204 for anything else. */
export const echoChallenge: ReceiverHandler = (request, response) => {
  let parsed: { type?: string; challenge?: string } = {};
  try {
    parsed = JSON.parse(request.body);
  } catch {}
  if (parsed.type === "webhook.verification") {
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ challenge: parsed.challenge }));
  } else {
    response.writeHead(204);
    response.end();
  }
};

export const startWebhookReceiver = async (
  handler: ReceiverHandler = echoChallenge,
  host = "127.0.0.1",
): Promise<WebhookReceiver> => {
  let current = handler;
  const requests: ReceivedRequest[] = [];
  const server = createServer((incoming, response) => {
    const chunks: Buffer[] = [];
    incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
    incoming.on("end", () => {
      const request = {
        method: incoming.method ?? "",
        path: incoming.url ?? "",
        headers: incoming.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      requests.push(request);
      current(request, response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}/hook`,
    port,
    requests,
    answer(next) {
      current = next;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};
