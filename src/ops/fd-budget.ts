/**
 * The process's file descriptor budget: every listener's connection cap, the
 * HTTP cap and a reserve for the database pool, Redis, logs and files must
 * fit under the soft limit (`ulimit -n`), or a flood on one port could starve
 * the others of descriptors (accept fails with EMFILE for everyone). Checked
 * once at start; a budget over the limit is logged with what to change.
 */
import { readFileSync } from "node:fs";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log.ts";

/** Descriptors kept for everything but client connections: database pool, Redis, log, files. */
export const RESERVED_DESCRIPTORS = 200;

export interface DescriptorBudget {
  /** Client connections the caps allow, plus the reserve. */
  needed: number;
  /** The soft RLIMIT_NOFILE, when the platform tells it (Linux /proc). */
  limit: number | undefined;
}

/** The soft "Max open files" limit of this process, from /proc/self/limits (Linux only). */
export const readOpenFilesLimit = (): number | undefined => {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === "unlimited" ? undefined : Number(soft);
  } catch {
    return undefined;
  }
};

export const fileDescriptorBudget = (
  config: Config,
  role: "all" | "broker" | "bridge",
  limit = readOpenFilesLimit(),
): DescriptorBudget => {
  const broker = role === "broker" || (role === "all" && !config.BREWCAST_MQTT_URL);
  // TCP and WebSocket always, TLS when configured.
  const mqttListeners = broker ? 2 + (config.BREWCAST_MQTTS_PORT === undefined ? 0 : 1) : 0;
  const needed =
    mqttListeners * config.BREWCAST_MAX_CONNECTIONS +
    config.BREWCAST_HTTP_MAX_CONNECTIONS +
    RESERVED_DESCRIPTORS;
  return { needed, limit };
};

export const checkFileDescriptorBudget = (
  config: Config,
  role: "all" | "broker" | "bridge",
  log: Logger,
): DescriptorBudget => {
  const budget = fileDescriptorBudget(config, role);
  if (budget.limit !== undefined && budget.needed > budget.limit) {
    log.warn(
      { needed: budget.needed, limit: budget.limit },
      "connection caps exceed the open-files limit: raise `ulimit -n` (compose: ulimits.nofile) or lower BREWCAST_MAX_CONNECTIONS / BREWCAST_HTTP_MAX_CONNECTIONS",
    );
  }
  return budget;
};
