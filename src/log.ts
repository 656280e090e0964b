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
