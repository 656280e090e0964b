/**
 * RFC 9457 problem+json: the one shape of every HTTP error, and the one
 * mapper from whatever was thrown to a registry code.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from "fastify-type-provider-zod";
import { z } from "zod";
import { BrewcastError, ERROR_CODES, ERRORS, type ErrorCode, type FieldError } from "../domain/errors.ts";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export const problemSchema = z
  .object({
    type: z.string().describe("A URI naming the problem type: `urn:brewcast:problem:<code>`."),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z
      .enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]])
      .describe("Stable error code; see the README's error table."),
    instance: z.string().optional().describe("The request path."),
    request_id: z.string().optional().describe("Quote it when reporting a problem."),
    errors: z
      .array(z.object({ field: z.string(), message: z.string() }))
      .optional()
      .describe(
        "Each invalid field: `body.items.0.quantity`, `query.limit`, `header.idempotency-key`, `params.id`.",
      ),
  })
  .meta({ id: "Problem" });
export type Problem = z.infer<typeof problemSchema>;

/** The OpenAPI response entry for the given statuses, all problem+json. */
export const problemResponses = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((status) => [
      status,
      {
        description: ERROR_CODES.filter((code) => ERRORS[code].status === status).join(", "),
        content: { [PROBLEM_CONTENT_TYPE]: { schema: problemSchema } },
      },
    ]),
  );

export const buildProblem = (
  code: ErrorCode,
  detail: string,
  request?: FastifyRequest,
  errors?: FieldError[],
): Problem => ({
  type: `urn:brewcast:problem:${code.toLowerCase().replaceAll("_", "-")}`,
  title: ERRORS[code].title,
  status: ERRORS[code].status,
  detail,
  code,
  ...(request ? { instance: request.url.split("?")[0], request_id: String(request.id) } : {}),
  ...(errors && errors.length > 0 ? { errors } : {}),
});

/**
 * Fastify's own refusals (body parsing, routing, and the `frameworkErrors`
 * it raises before a route is found): their registry code and, for
 * VALIDATION_FAILED, the part of the request at fault.
 */
const FASTIFY_CODES: Record<string, { code: ErrorCode; field?: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { code: "PAYLOAD_TOO_LARGE" },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: "UNSUPPORTED_MEDIA_TYPE" },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: "VALIDATION_FAILED", field: "header.content-length" },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: "VALIDATION_FAILED", field: "body" },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: "VALIDATION_FAILED", field: "body" },
  FST_ERR_VALIDATION: { code: "VALIDATION_FAILED", field: "body" },
  // A path that is not valid percent-encoding (`/v1/orders/%`).
  FST_ERR_BAD_URL: { code: "VALIDATION_FAILED", field: "path" },
  // A path parameter longer than the router accepts: no id is that long.
  FST_ERR_MAX_PARAM_LENGTH: { code: "VALIDATION_FAILED", field: "path" },
  FST_ERR_ASYNC_CONSTRAINT: { code: "VALIDATION_FAILED", field: "header" },
};

/** Postgres and socket errors that mean "the database is not reachable right now". */
const isUnavailable = (error: { code?: string }): boolean =>
  typeof error.code === "string" &&
  (["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "57P01", "57P03", "53300"].includes(error.code) ||
    error.code.startsWith("08"));

/** Maps anything thrown while serving a request to a problem, keeping internals out of the response. */
export const toProblem = (error: unknown, request: FastifyRequest): Problem => {
  if (error instanceof BrewcastError) return buildProblem(error.code, error.message, request, error.errors);
  if (hasZodFastifySchemaValidationErrors(error)) {
    const context = String(error.validationContext ?? "body");
    const prefix = context === "querystring" ? "query" : context === "headers" ? "header" : context;
    const errors = error.validation.map((issue) => ({
      field: [prefix, ...issue.instancePath.split("/").filter(Boolean)].join("."),
      message: issue.message ?? "is invalid",
    }));
    return buildProblem(
      "VALIDATION_FAILED",
      `invalid ${prefix}: ${errors.map((e) => `${e.field} ${e.message}`).join("; ")}`,
      request,
      errors,
    );
  }
  if (isResponseSerializationError(error)) {
    return buildProblem("INTERNAL", "the server produced an invalid response", request);
  }
  const fastifyError = error as FastifyError;
  const mapped = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (mapped) {
    const field = mapped.field ? [{ field: mapped.field, message: fastifyError.message }] : undefined;
    return buildProblem(mapped.code, fastifyError.message, request, field);
  }
  if (
    typeof fastifyError.statusCode === "number" &&
    fastifyError.statusCode >= 400 &&
    fastifyError.statusCode < 500
  ) {
    // Another client error from Fastify or a plugin: still a 400 that says where it looked.
    return buildProblem("VALIDATION_FAILED", fastifyError.message, request, [
      { field: "request", message: fastifyError.message },
    ]);
  }
  if (isUnavailable(fastifyError))
    return buildProblem("UNAVAILABLE", "the database is unavailable; retry with backoff", request);
  return buildProblem("INTERNAL", "internal error; retry with backoff", request);
};

export const sendProblem = (reply: FastifyReply, problem: Problem): FastifyReply => {
  if (problem.code === "RATE_LIMITED" && !reply.hasHeader("retry-after")) reply.header("retry-after", "1");
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(problem);
};
