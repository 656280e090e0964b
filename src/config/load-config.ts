/**
 * Validates the environment once and freezes the result. A bad value stops
 * the start with one message naming every bad variable.
 */
import { redactUrl } from "../log.ts";
import { CONFIG_FIELDS, type Config, configSchema, SECRET_FIELDS } from "./schema.ts";

export class ConfigError extends Error {
  readonly problems: { variable: string; message: string }[];
  constructor(problems: { variable: string; message: string }[]) {
    super(`invalid configuration: ${problems.map((p) => `${p.variable}: ${p.message}`).join("; ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export interface LoadedConfig {
  config: Config;
  /** `BREWCAST_*` variables that no field reads: likely typos. */
  unknownVariables: string[];
  warnings: string[];
}

const KNOWN = new Set(Object.keys(CONFIG_FIELDS));

const isLoopback = (host: string): boolean => host === "127.0.0.1" || host === "localhost" || host === "::1";

export const loadConfig = (env: NodeJS.ProcessEnv): LoadedConfig => {
  const input: Record<string, string | undefined> = {};
  // An empty value is unset (a shell `VAR=`), for every field: zod would coerce
  // "" to 0 for numbers (BREWCAST_HTTP_PORT= meaning "any free port").
  for (const name of KNOWN) input[name] = env[name] === "" ? undefined : env[name];
  const parsed = configSchema.safeParse(input);
  const problems: { variable: string; message: string }[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push({ variable: String(issue.path[0] ?? "?"), message: issue.message });
    }
  } else {
    const c = parsed.data;
    if (c.BREWCAST_MQTTS_PORT !== undefined && (!c.BREWCAST_TLS_CERT || !c.BREWCAST_TLS_KEY)) {
      problems.push({
        variable: "BREWCAST_MQTTS_PORT",
        message: "needs BREWCAST_TLS_CERT and BREWCAST_TLS_KEY",
      });
    }
    if (c.BREWCAST_HTTP_HEADERS_TIMEOUT_MS > c.BREWCAST_HTTP_REQUEST_TIMEOUT_MS) {
      problems.push({
        variable: "BREWCAST_HTTP_HEADERS_TIMEOUT_MS",
        message: `must not exceed BREWCAST_HTTP_REQUEST_TIMEOUT_MS (${c.BREWCAST_HTTP_REQUEST_TIMEOUT_MS})`,
      });
    }
    if (c.BREWCAST_TLS_CA && c.BREWCAST_MQTTS_PORT === undefined) {
      problems.push({
        variable: "BREWCAST_TLS_CA",
        message: "needs BREWCAST_MQTTS_PORT (mutual TLS is on the TLS listener)",
      });
    }
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);

  const config = Object.freeze({ ...parsed.data });
  const unknownVariables = Object.keys(env).filter(
    (name) => name.startsWith("BREWCAST_") && !KNOWN.has(name),
  );
  const warnings: string[] = [];
  if (!isLoopback(config.BREWCAST_HOST)) {
    if (config.BREWCAST_MQTTS_PORT === undefined) {
      warnings.push(
        `BREWCAST_HOST=${config.BREWCAST_HOST} exposes MQTT without TLS: passwords cross the network in clear`,
      );
    }
  }
  if (!isLoopback(config.BREWCAST_HOST) && !config.BREWCAST_METRICS_TOKEN) {
    warnings.push(
      `BREWCAST_HOST=${config.BREWCAST_HOST} serves GET /metrics (partner ids, lag, client counts) to anyone: set BREWCAST_METRICS_TOKEN`,
    );
  }
  if (!config.BREWCAST_ADMIN_TOKEN)
    warnings.push("BREWCAST_ADMIN_TOKEN is not set: a one-time admin token is generated");
  return { config, unknownVariables, warnings };
};

/** The effective config with secrets hidden: tokens fully, URL passwords only. */
export const redactConfig = (config: Config): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(config)) {
    if (value === undefined || !SECRET_FIELDS.has(name as keyof Config)) out[name] = value;
    else if (name.endsWith("_URL")) out[name] = redactUrl(String(value));
    else out[name] = "***";
  }
  return out;
};
