/**
 * Validates the environment once and freezes the result. A bad value stops
 * the start with one message naming every bad variable.
 */
import { redactUrl } from "../log.ts";
import { CONFIG_FIELDS, type Config, configSchema, SECRET_FIELDS } from "./schema.ts";

export interface ConfigProblem {
  variable: string;
  /** The value as given, secrets hidden (a URL's password, a token); absent when unset. */
  value?: string;
  message: string;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(
      `invalid configuration: ${problems
        .map((p) => `${p.variable}${p.value === undefined ? "" : `=${p.value}`}: ${p.message}`)
        .join("; ")}`,
    );
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

/** A value fit for an error message: secrets hidden, URLs with their password replaced. */
const shownValue = (name: string, value: string | undefined): string | undefined => {
  if (value === undefined || !SECRET_FIELDS.has(name as keyof Config)) return value;
  return name.endsWith("_URL") ? redactUrl(value) : "***";
};

/** zod's words for a number that is not one ("expected number, received NaN") are for programmers. */
const problemMessage = (issue: { code: string; message: string; expected?: unknown }): string =>
  issue.code === "invalid_type" && issue.expected === "number" ? "not a number" : issue.message;

export const loadConfig = (env: NodeJS.ProcessEnv): LoadedConfig => {
  const input: Record<string, string | undefined> = {};
  // An empty value is unset (a shell `VAR=`), for every field: zod would coerce
  // "" to 0 for numbers (BREWCAST_HTTP_PORT= meaning "any free port").
  for (const name of KNOWN) input[name] = env[name] === "" ? undefined : env[name];
  const parsed = configSchema.safeParse(input);
  const problems: ConfigProblem[] = [];
  const problem = (variable: string, message: string) => {
    const value = shownValue(variable, input[variable]);
    problems.push({ variable, ...(value === undefined ? {} : { value }), message });
  };
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problem(String(issue.path[0] ?? "?"), problemMessage(issue));
  } else {
    const c = parsed.data;
    if (c.BREWCAST_MQTTS_PORT !== undefined && (!c.BREWCAST_TLS_CERT || !c.BREWCAST_TLS_KEY)) {
      problem("BREWCAST_MQTTS_PORT", "needs BREWCAST_TLS_CERT and BREWCAST_TLS_KEY");
    }
    if (c.BREWCAST_HTTP_HEADERS_TIMEOUT_MS > c.BREWCAST_HTTP_REQUEST_TIMEOUT_MS) {
      problem(
        "BREWCAST_HTTP_HEADERS_TIMEOUT_MS",
        `must not exceed BREWCAST_HTTP_REQUEST_TIMEOUT_MS (${c.BREWCAST_HTTP_REQUEST_TIMEOUT_MS})`,
      );
    }
    if (c.BREWCAST_TLS_CA && c.BREWCAST_MQTTS_PORT === undefined) {
      problem("BREWCAST_TLS_CA", "needs BREWCAST_MQTTS_PORT (mutual TLS is on the TLS listener)");
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
  if (config.BREWCAST_WEBHOOK_ALLOW_NETS) {
    warnings.push(
      `BREWCAST_WEBHOOK_ALLOW_NETS=${config.BREWCAST_WEBHOOK_ALLOW_NETS}: webhook URLs may reach these networks, plain http included (SSRF guard relaxed; for development and tests only)`,
    );
  }
  // An unset BREWCAST_ADMIN_TOKEN is warned about by `start`, which generates one and logs it.
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
