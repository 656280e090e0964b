/**
 * A server under test (lib/children.ts `spawnServer("static")`): a bare node:http server answering
 * each path of the JSON object in the file BENCH_STATIC_ROUTES (`{ "/path": <body string> }`,
 * query ignored) with that body as application/json: the floor a Node HTTP service cannot beat.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { runChild, serveUntilStopped } from "../lib/children.ts";

runChild("server static", async () => {
  const file = process.env.BENCH_STATIC_ROUTES;
  if (!file) throw new Error("BENCH_STATIC_ROUTES is not set");
  const routes = new Map<string, Buffer>(
    Object.entries(JSON.parse(readFileSync(file, "utf8")) as Record<string, string>).map(([path, body]) => [
      path,
      Buffer.from(body),
    ]),
  );
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    const body = routes.get(path);
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      "content-type": "application/json; charset=utf-8",
      "content-length": body.length,
    });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  serveUntilStopped((server.address() as AddressInfo).port, {}, async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
