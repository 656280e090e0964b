/** Ports on 127.0.0.1: a free one, and waiting until something listens on one. */
import net from "node:net";
import { sleep } from "./machine.ts";

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });

/** Resolves once a TCP connection to 127.0.0.1:`port` succeeds; throws after `timeoutMs`. */
export const waitForPort = async (port: number, label: string, timeoutMs = 10_000): Promise<void> => {
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (i * 50 > timeoutMs) throw new Error(`${label} did not listen within ${timeoutMs / 1000} s`);
    await sleep(50);
  }
};
