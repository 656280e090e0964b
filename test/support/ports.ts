/**
 * A free TCP port on 127.0.0.1, for a process that must come back on the
 * same port (a restart): everything else listens on port 0.
 */
import { createServer } from "node:net";

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
