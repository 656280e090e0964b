/**
 * Registers cleanups that run after each test, last registered first, so a
 * test tears down what it started (brokers, bridges, databases) in reverse.
 */
import { afterEach } from "vitest";

export const useCleanups = (
  options: { ignoreErrors?: boolean } = {},
): ((cleanup: () => Promise<unknown>) => void) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      // A test that disturbed a shared service may leave connections that fail to close.
      await (options.ignoreErrors ? cleanup().catch(() => undefined) : cleanup());
    }
  });
  return (cleanup) => {
    cleanups.push(cleanup);
  };
};
