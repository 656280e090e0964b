/**
 * A plain HTTP client of GET /v1/events/stream (node:http, no EventSource):
 * it parses the text/event-stream as it arrives and keeps every message.
 */
import http from "node:http";

export interface SseMessage {
  event: string;
  id: string | undefined;
  data: string;
}

export interface SseClient {
  status: number;
  headers: http.IncomingHttpHeaders;
  messages: SseMessage[];
  /** The events (`message` messages) parsed, in the order they came. */
  events(): { seq: number }[];
  /** Resolves when the server ends the response. */
  ended: Promise<void>;
  close(): void;
}

export const openSse = (url: string, headers: Record<string, string> = {}): Promise<SseClient> =>
  new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { accept: "text/event-stream", ...headers } }, (response) => {
      const messages: SseMessage[] = [];
      let buffer = "";
      let ended!: () => void;
      const endedPromise = new Promise<void>((done) => {
        ended = done;
      });
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        buffer += chunk;
        for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message: SseMessage = { event: "message", id: undefined, data: "" };
          let hasData = false;
          for (const line of block.split("\n")) {
            const colon = line.indexOf(":");
            if (colon === 0) continue;
            const field = colon === -1 ? line : line.slice(0, colon);
            const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") message.event = value;
            else if (field === "id") message.id = value;
            else if (field === "data") {
              message.data += hasData ? `\n${value}` : value;
              hasData = true;
            }
          }
          if (hasData) messages.push(message);
        }
      });
      response.on("end", () => ended());
      response.on("close", () => ended());
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        messages,
        events: () => messages.filter((m) => m.event === "message").map((m) => JSON.parse(m.data)),
        ended: endedPromise,
        close: () => request.destroy(),
      });
    });
    request.on("error", reject);
  });
