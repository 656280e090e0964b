/**
 * The OpenAPI 3.1 `webhooks` section: the requests a partner's receiver gets
 * from brewcast (an event, and the verification challenge), with the
 * Standard Webhooks headers. Documentation only; src/webhooks/ sends them.
 */

const header = (name: string, description: string, example: string) => ({
  name,
  in: "header",
  required: true,
  description,
  schema: { type: "string", examples: [example] },
});

const HEADERS = [
  header(
    "webhook-id",
    "The idempotency key: `evt_{partner}_{seq}` for an event, the same on every retry and replay; `verify_…` for a verification request.",
    "evt_acme_1042",
  ),
  header(
    "webhook-timestamp",
    "Unix seconds when this attempt was signed. Refuse one more than 5 minutes from your clock (replay protection).",
    "1764763200",
  ),
  header(
    "webhook-signature",
    "Space-separated `v1,<base64 HMAC-SHA256>` of `{webhook-id}.{webhook-timestamp}.{body}` keyed by the secret's decoded bytes; two during a secret rotation's overlap. Accept the request if any one matches.",
    "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
  ),
];

const SIGNED = "Verify `webhook-signature` before trusting the body (the standardwebhooks library does it).";

export const openApiWebhooks = {
  "order-event": {
    post: {
      summary: "An order event, POSTed to each active webhook endpoint whose filters it matches",
      description: `The body is the event object of \`GET /v1/events\`, byte for byte the JSON that was signed. ${SIGNED} Answer 2xx quickly (within the request deadline, 10 s by default) and process asynchronously; dedupe by \`webhook-id\` (or partner and \`seq\`). 410 Gone disables the endpoint.`,
      parameters: HEADERS,
      requestBody: {
        required: true,
        content: { "application/json": { schema: { $ref: "#/components/schemas/OrderEvent" } } },
      },
      responses: {
        "2XX": { description: "Received: the event counts as delivered." },
        "410": { description: "Gone: the endpoint is disabled and sent nothing more." },
        default: {
          description: "Anything else (or no answer, or a redirect, which is never followed): retried.",
        },
      },
    },
  },
  "webhook-verification": {
    post: {
      summary: "The verification challenge, sent when an endpoint's URL is set or changed and on demand",
      description: `${SIGNED} Echo the challenge to prove the URL is yours; the endpoint also needs an operator's confirmation before events are sent to it.`,
      parameters: HEADERS,
      requestBody: {
        required: true,
        content: {
          "application/json": {
            schema: {
              type: "object",
              required: ["type", "challenge"],
              properties: {
                type: { const: "webhook.verification" },
                challenge: { type: "string", description: "Random; echo it." },
              },
            },
          },
        },
      },
      responses: {
        "200": {
          description: "The URL accepts brewcast's webhooks.",
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["challenge"],
                properties: { challenge: { type: "string", description: "The challenge received." } },
              },
            },
          },
        },
      },
    },
  },
};
