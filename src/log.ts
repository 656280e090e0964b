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
