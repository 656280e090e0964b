/**
 * The configuration: environment variables only, one zod schema, every
 * field described. The README's configuration table is generated from it.
 */
import { isIP } from "node:net";
import { z } from "zod";

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

const optionalPort = z.coerce.number().int().min(0).max(65535).optional();

const positiveInt = (fallback: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(1).max(max).default(fallback);

/** Empty strings count as unset, as a shell `VAR=` usually means. */
const optionalString = z
  .string()
  .optional()
  .transform((value) => (value === "" ? undefined : value));

const url = (protocols: RegExp, example: string) =>
  optionalString.refine((value) => value === undefined || (URL.canParse(value) && protocols.test(value)), {
    message: `must be a URL such as ${example}`,
  });

/** An IPv4 or IPv6 network in CIDR form, or a bare address. */
const isCidr = (text: string): boolean => {
  const [address = "", bits, ...rest] = text.split("/");
  if (rest.length > 0 || isIP(address) === 0) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d{1,3}$/.test(bits) && n <= (isIP(address) === 4 ? 32 : 128);
};

export const CONFIG_FIELDS = {
  DATABASE_URL: url(/^postgres(ql)?:\/\//, "postgres://user@host:5432/db").describe(
    "Postgres connection string. Unset: the embedded database (PGlite) in BREWCAST_DATA_DIR.",
  ),
  REDIS_URL: url(/^rediss?:\/\//, "redis://127.0.0.1:6379").describe(
    "Redis for broker scale-out: fan-out between broker nodes, shared retained messages and wills (persistent sessions are in the database). Unset: in-memory.",
  ),
  BREWCAST_DATA_DIR: z
    .string()
    .min(1)
    .default("./data")
    .describe(
      "Where the embedded database lives when DATABASE_URL is unset; `memory://` for a throwaway one.",
    ),
  BREWCAST_HOST: z
    .string()
    .min(1)
    .default("127.0.0.1")
    .describe("Bind address of every listener. Use 0.0.0.0 in a container."),
  BREWCAST_HTTP_PORT: port(8080).describe(
    "HTTP API port, also MQTT over WebSocket at /mqtt. 0 picks a free port.",
  ),
  BREWCAST_MQTT_PORT: port(1883).describe("MQTT over TCP port. 0 picks a free port."),
  BREWCAST_MQTTS_PORT: optionalPort.describe(
    "MQTT over TLS port; needs BREWCAST_TLS_CERT and BREWCAST_TLS_KEY. Unset: no TLS listener.",
  ),
  BREWCAST_TLS_CERT: optionalString.describe("Path to the PEM server certificate for MQTT over TLS."),
  BREWCAST_TLS_KEY: optionalString.describe("Path to the PEM private key for MQTT over TLS."),
  BREWCAST_TLS_CA: optionalString.describe(
    "Path to a PEM CA bundle: when set, clients may log in with a registered client certificate (mutual TLS).",
  ),
  BREWCAST_MQTT_URL: url(/^(mqtts?|wss?|tcp):\/\//, "mqtt://broker:1883").describe(
    "External MQTT broker the bridge publishes to. Unset: the embedded broker of this process.",
  ),
  BREWCAST_BRIDGE_SECRET: optionalString
    .refine((value) => value === undefined || value.length >= 16, {
      message: "must be at least 16 characters",
    })
    .describe(
      "Secret of the bridge's internal MQTT identity (username brewcast-bridge), shared by `brewcast broker` nodes and a `brewcast bridge` publishing to them. Unset: brokers accept no bridge login.",
    ),
  BREWCAST_ADMIN_TOKEN: optionalString
    .refine((value) => value === undefined || value.length >= 16, {
      message: "must be at least 16 characters",
    })
    .describe("Bearer token of the admin API. Unset: a random one is generated at start and logged once."),
  BREWCAST_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(1)
    .max(36500)
    .optional()
    .describe("Days of event history kept. Unset: keep everything. Older cursors get 410 CURSOR_EXPIRED."),
  BREWCAST_MAX_PACKET_BYTES: positiveInt(65_536, 268_435_455).describe(
    "Largest MQTT packet accepted on any transport; a bigger one closes the connection.",
  ),
  BREWCAST_MAX_CONNECTIONS_PER_PARTNER: positiveInt(1000).describe(
    "MQTT connections one partner may hold at once.",
  ),
  BREWCAST_MAX_CONNECTIONS: positiveInt(5_000).describe(
    "MQTT connections each listener (TCP, TLS, WebSocket) holds at once, logged in or not; beyond it a new one is closed at accept.",
  ),
  BREWCAST_MAX_PENDING_PER_ADDRESS: positiveInt(100).describe(
    "MQTT connections one source address may hold before they log in; beyond it its new ones are closed at accept. Behind a TCP load balancer (one address for all) raise it towards BREWCAST_MAX_CONNECTIONS.",
  ),
  BREWCAST_CONNECT_TIMEOUT_MS: positiveInt(5_000, 60_000).describe(
    "How long a new MQTT connection may take to send its CONNECT before it is closed.",
  ),
  BREWCAST_LOGIN_FAILURE_LIMIT: positiveInt(10).describe(
    "Failed MQTT logins of one username from one source address, within BREWCAST_LOGIN_FAILURE_WINDOW_MS, after which that pair's connections are refused until the window ends.",
  ),
  BREWCAST_LOGIN_FAILURE_WINDOW_MS: positiveInt(60_000).describe(
    "The window of BREWCAST_LOGIN_FAILURE_LIMIT.",
  ),
  BREWCAST_HTTP_MAX_CONNECTIONS: positiveInt(1_000).describe(
    "HTTP connections held at once besides MQTT over WebSocket; beyond it a new one is closed at accept.",
  ),
  BREWCAST_HTTP_HEADERS_TIMEOUT_MS: positiveInt(10_000).describe(
    "How long a client may take to send a request's headers before the connection is closed.",
  ),
  BREWCAST_HTTP_REQUEST_TIMEOUT_MS: positiveInt(30_000).describe(
    "How long a client may take to send a whole request (headers and body).",
  ),
  BREWCAST_RATE_LIMIT_REQUESTS: positiveInt(200).describe(
    "Requests one partner credential may make to /v1 per BREWCAST_RATE_LIMIT_WINDOW_MS; beyond it the API answers 429 RATE_LIMITED with Retry-After (before reading anything) until the window ends.",
  ),
  BREWCAST_RATE_LIMIT_WINDOW_MS: positiveInt(1_000, 3_600_000).describe(
    "The window of BREWCAST_RATE_LIMIT_REQUESTS (fixed windows, counted per process).",
  ),
  BREWCAST_HISTORY_CACHE_MB: z.coerce
    .number()
    .int()
    .min(0)
    .max(65_536)
    .default(256)
    .describe(
      "Memory for the log's recent events, kept as the JSON bytes sent once this process read them (its delivery core publishing them, a page, a replay), so that GET /v1/events pages and resumed MQTT sessions' replays are served without reading them back from the database (an event never changes once committed). Size it to what consumers read back after an outage: 256 MiB holds about 350,000 events of 600 bytes; 0 turns it off.",
    ),
  BREWCAST_HISTORY_MAX_PENDING: positiveInt(64).describe(
    "GET /v1/events reads in progress at once in this process, all credentials together; beyond it the next waits its turn for at most BREWCAST_HISTORY_MAX_WAIT_MS, then is answered 429 RATE_LIMITED with a Retry-After that grows with the crowd (a reconnect storm), instead of waiting for a database connection until it times out.",
  ),
  BREWCAST_HISTORY_MAX_WAIT_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(30_000)
    .default(5_000)
    .describe(
      "How long a GET /v1/events read waits for one of the BREWCAST_HISTORY_MAX_PENDING places before it is answered 429; 0 refuses at once.",
    ),
  BREWCAST_METRICS_TOKEN: optionalString
    .refine((value) => value === undefined || value.length >= 16, {
      message: "must be at least 16 characters",
    })
    .describe(
      "Bearer token GET /metrics asks for (Prometheus `authorization: { credentials: … }`). Unset: /metrics answers anyone who reaches the HTTP port.",
    ),
  BREWCAST_DRAIN_TIMEOUT_MS: positiveInt(10_000, 15_000).describe(
    "How long a subscriber that stops reading may hold up delivery before it is disconnected.",
  ),
  BREWCAST_SESSION_FLUSH_MS: positiveInt(1_000, 60_000).describe(
    "How often persistent MQTT sessions' positions (what each client acknowledged) are written to the database; a crash re-delivers at most this much, never skips.",
  ),
  BREWCAST_SESSION_TTL: z.coerce
    .number()
    .int()
    .min(60)
    .default(7 * 24 * 3600)
    .describe("Seconds a persistent MQTT session may stay unused before it is expired."),
  BREWCAST_WATERMARK_MS: positiveInt(5_000).describe(
    "How often the bridge re-publishes the retained cursors, and an event stream (GET /v1/events/stream) writes its cursor.",
  ),
  BREWCAST_SSE_MAX_STREAMS_PER_PARTNER: positiveInt(100).describe(
    "Event streams (GET /v1/events/stream) one partner may hold open at once; beyond it a new one is answered 429.",
  ),
  BREWCAST_CONSOLE: z
    .enum(["on", "off"])
    .default("on")
    .describe(
      "The operator console (/console, signed in with BREWCAST_ADMIN_TOKEN) and the kiosk reference page (/kiosk). off: neither page is served.",
    ),
  BREWCAST_WEBHOOK_ALLOW_NETS: optionalString
    .refine(
      (value) =>
        value === undefined ||
        value
          .split(/[\s,]+/)
          .filter(Boolean)
          .every(isCidr),
      {
        message: "must be a comma-separated list of CIDR networks such as 127.0.0.0/8,::1/128",
      },
    )
    .describe(
      "Operator-only, for development and tests: networks (CIDR, comma-separated) webhook URLs may reach although private or loopback, plain http included. Logged as a warning at start. Unset: https to public addresses only.",
    ),
  BREWCAST_WEBHOOK_RETRY_INITIAL_MS: positiveInt(1_000, 3_600_000).describe(
    "First retry delay of a failed webhook delivery; it doubles (full jitter) up to BREWCAST_WEBHOOK_RETRY_MAX_MS.",
  ),
  BREWCAST_WEBHOOK_RETRY_MAX_MS: positiveInt(3_600_000, 86_400_000).describe(
    "Longest delay between two attempts of a failing webhook delivery.",
  ),
  BREWCAST_WEBHOOK_POLL_ONLY_AFTER_MS: positiveInt(6 * 3_600_000, 30 * 86_400_000).describe(
    "A webhook endpoint failing the same event this long (since its first failed attempt) becomes poll_only: no pushes, one probe every BREWCAST_WEBHOOK_PROBE_INTERVAL_MS.",
  ),
  BREWCAST_WEBHOOK_PROBE_INTERVAL_MS: positiveInt(3_600_000, 86_400_000).describe(
    "How often a poll_only webhook endpoint is sent one attempt (its oldest undelivered event); a 2xx makes it active again.",
  ),
  BREWCAST_WEBHOOK_GIVE_UP_MS: positiveInt(3 * 86_400_000, 30 * 86_400_000).describe(
    "A webhook endpoint failing the same event this long (since its first failed attempt) is disabled.",
  ),
  BREWCAST_WEBHOOK_SECRET_OVERLAP_SECONDS: positiveInt(86_400, 30 * 86_400).describe(
    "After a webhook secret is rotated, how long the old secret keeps signing too (two signatures per request).",
  ),
  BREWCAST_WEBHOOK_TIMEOUT_MS: positiveInt(10_000, 60_000).describe(
    "Deadline of one webhook request (connect, send, read the answer).",
  ),
  LOG_LEVEL: z
    .enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"])
    .default("info")
    .describe("pino log level."),
} as const;

export const configSchema = z.object(CONFIG_FIELDS);
export type Config = Readonly<z.infer<typeof configSchema>>;

/** Fields never printed in full. */
export const SECRET_FIELDS = new Set<keyof Config>([
  "BREWCAST_BRIDGE_SECRET",
  "BREWCAST_ADMIN_TOKEN",
  "BREWCAST_METRICS_TOKEN",
  "DATABASE_URL",
  "REDIS_URL",
  "BREWCAST_MQTT_URL",
]);
