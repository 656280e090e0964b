/**
 * What an operator must change when a listener cannot bind: the port's
 * variable (taken, not permitted) or BREWCAST_HOST (not an address of this
 * machine), with the value, in one line. And a check of every port before
 * anything slow starts (the database), so a taken port fails at once.
 */
import net from "node:net";

/** The errors of an address that cannot be bound whatever the port: the host is wrong. */
const HOST_ERRORS = new Set([
  "ENOTFOUND",
  "EAI_AGAIN",
  "EAI_FAIL",
  "EAI_NONAME",
  "EADDRNOTAVAIL",
  "EAFNOSUPPORT",
]);

export const listenError = (variable: string, host: string, port: number, error: unknown): Error => {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") {
    return new Error(
      `${variable}=${port}: ${host}:${port} is already in use (choose another port, or 0 for any free one)`,
    );
  }
  if (code === "EACCES") {
    return new Error(
      `${variable}=${port}: not allowed to bind ${host}:${port} (choose another port, or 0 for any free one)`,
    );
  }
  if (code !== undefined && HOST_ERRORS.has(code)) {
    return new Error(
      `BREWCAST_HOST=${host}: cannot listen there (${code}): use an address of this machine, such as 127.0.0.1 or 0.0.0.0`,
    );
  }
  return new Error(
    `${variable}=${port}: ${host}:${port} cannot be bound (${code ?? (error as Error).message})`,
  );
};

/**
 * Binds and releases each port on `host`, one after the other; rejects with the
 * listenError of the first that cannot be bound. Port 0 is bound too: it checks the host.
 */
export const checkPortsFree = async (
  host: string,
  listeners: { variable: string; port: number }[],
): Promise<void> => {
  for (const { variable, port } of listeners) {
    await new Promise<void>((resolve, reject) => {
      const server = net.createServer();
      server.once("error", (error) => reject(listenError(variable, host, port, error)));
      server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
    });
  }
};
