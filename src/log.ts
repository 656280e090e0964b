/**
 * Logging: pino, JSON lines, secrets redacted wherever they appear.
 */
import pino, { type Logger } from "pino";

export type { Logger };

export const REDACT_PATHS = [
  "req.headers.authorization",
  "headers.authorization",
  "password",
  "secret",
  "*.password",
  "*.secret",
  "BREWCAST_ADMIN_TOKEN",
];

export const createLogger = (level: string, destination?: pino.DestinationStream): Logger =>
  pino(
    {
      level,
      base: { service: "brewcast" },
      redact: { paths: REDACT_PATHS, censor: "***" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );

/** A URL fit for a log line: its password, if any, replaced. */
export const redactUrl = (value: string): string => {
  try {
    const url = new URL(value);
    if (url.password) url.password = "***";
    return url.toString();
  } catch {
    return "***";
  }
};

/** At most this many bytes of anything a client sent go into one log field. */
export const CLIENT_INPUT_LOG_BYTES = 200;

/** At most CLIENT_INPUT_LOG_BYTES of client input, marked with its full length when cut. */
export const clipClientInput = <T extends string | undefined>(value: T): T => {
  if (value === undefined || value.length <= CLIENT_INPUT_LOG_BYTES / 4) return value;
  const bytes = Buffer.byteLength(value);
  if (bytes <= CLIENT_INPUT_LOG_BYTES) return value;
  const head = Buffer.from(value).subarray(0, CLIENT_INPUT_LOG_BYTES).toString("utf8");
  return `${head}…(${bytes} bytes)` as T;
};
