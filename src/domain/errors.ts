/**
 * The one registry of error codes. Every refusal the product gives, over HTTP
 * (problem+json `code`) or MQTT, names one of these. Codes are stable once
 * published: add, never rename. The README's error table and the OpenAPI
 * document list exactly these codes (a test keeps them in step).
 */

export const ERRORS = {
  VALIDATION_FAILED: {
    status: 400,
    title: "The request is invalid",
    meaning: "A field, query parameter, header or path parameter is malformed; `errors` names each one.",
  },
  UNAUTHENTICATED: {
    status: 401,
    title: "Authentication required",
    meaning: "No credential, an unknown one, or a revoked one.",
  },
  FORBIDDEN: {
    status: 403,
    title: "Not allowed",
    meaning:
      "The credential is valid but its kind may not take this action. Never the answer for a shop outside a device credential's scope: that is NOT_FOUND.",
  },
  PARTNER_SUSPENDED: {
    status: 403,
    title: "The partner is suspended",
    meaning: "The partner's access is switched off by an operator (the kill switch) until resumed.",
  },
  NOT_FOUND: {
    status: 404,
    title: "Not found",
    meaning:
      "No such resource, or one outside the credential's scope (another partner's; for a device credential, another shop's).",
  },
  CONFLICT: { status: 409, title: "Already exists", meaning: "A resource with this id already exists." },
  WEBHOOK_LIMIT_REACHED: {
    status: 409,
    title: "Too many webhook endpoints",
    meaning: "The partner already has the most webhook endpoints allowed (10): delete one first.",
  },
  WEBHOOK_URL_MISMATCH: {
    status: 409,
    title: "Webhook URL changed",
    meaning:
      "An operator confirmed a URL that is not the endpoint's current one (it changed since it was checked): check the new URL and confirm that.",
  },
  ILLEGAL_TRANSITION: {
    status: 409,
    title: "Illegal status transition",
    meaning: "The order cannot move from its current status to the requested one.",
  },
  CURSOR_EXPIRED: {
    status: 410,
    title: "Cursor expired",
    meaning:
      "The cursor is older than the retained history: reload the state with GET /v1/orders, then follow events after its `as_of_seq`.",
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    title: "Body too large",
    meaning: "The request body is over the limit (64 KiB).",
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    title: "Unsupported media type",
    meaning: "Bodies must be application/json.",
  },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    title: "Idempotency key reused",
    meaning: "The Idempotency-Key was used before with a different request body.",
  },
  RATE_LIMITED: {
    status: 429,
    title: "Too many requests",
    meaning:
      "Slow down: the credential is over its request budget (BREWCAST_RATE_LIMIT_REQUESTS per window), or the partner over its open event streams; retry after the number of seconds in Retry-After, plus some jitter.",
  },
  INTERNAL: {
    status: 500,
    title: "Internal error",
    meaning: "A bug or an outage on our side; retry with backoff. Nothing was half-written.",
  },
  UNAVAILABLE: {
    status: 503,
    title: "Service unavailable",
    meaning: "A dependency (the database) is unreachable; retry with backoff.",
  },
} as const satisfies Record<string, { status: number; title: string; meaning: string }>;

export type ErrorCode = keyof typeof ERRORS;

export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

export interface FieldError {
  /** Where the problem is: `body.items.0.quantity`, `query.limit`, `header.idempotency-key`. */
  field: string;
  message: string;
}

/** An expected refusal: carries a registry code, never a stack trace to the client. */
export class BrewcastError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly errors: FieldError[] | undefined;

  constructor(code: ErrorCode, detail?: string, errors?: FieldError[]) {
    super(detail ?? ERRORS[code].title);
    this.name = "BrewcastError";
    this.code = code;
    this.status = ERRORS[code].status;
    this.errors = errors;
  }
}

export const isBrewcastError = (error: unknown): error is BrewcastError => error instanceof BrewcastError;
