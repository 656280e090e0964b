/**
 * Waiting on a condition instead of sleeping: poll until it holds, or fail
 * naming what was awaited. And a gate, to hold something open until the
 * test lets it go.
 */

/**
 * Polls `check` until it returns a value other than undefined/false, or
 * fails naming `what` (a function: said only on failure, e.g. with the
 * output so far) after `timeoutMs`. Yields to the event loop between polls.
 */
export const waitFor = async <T>(
  what: string | (() => string),
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
  intervalMs = 10,
): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === "string" ? what : what()}`,
      );
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
};

/** waitFor for a synchronous condition: resolves when it is true, rejects after `timeoutMs`. */
export const until = async (
  condition: () => boolean,
  timeoutMs = 5_000,
  what = "condition",
): Promise<void> => {
  await waitFor(what, condition, timeoutMs);
};

/** A promise with its resolve function, to hold something open until the test lets it go. */
export const gate = (): { promise: Promise<void>; open: () => void } => {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
};
