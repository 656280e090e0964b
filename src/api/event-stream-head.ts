/**
 * The head of a Server-Sent Events answer, the same for every stream the API
 * serves (the partners' event stream and the console's status stream).
 *
 * Imports nothing of ours.
 */
import type { ServerResponse } from "node:http";

export const writeEventStreamHead = (response: ServerResponse, requestId: string): void => {
  response.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    // Proxies must neither cache, transform nor buffer it (X-Accel-Buffering: nginx).
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
    connection: "keep-alive",
    "x-request-id": requestId,
  });
};
