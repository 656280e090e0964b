/**
 * Standard Webhooks signatures (the `standardwebhooks` library, not our own
 * HMAC): `webhook-signature` is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
 * per secret, space-separated, so during a rotation's overlap a receiver that
 * still holds the old secret and one that already holds the new both verify.
 */
import { Webhook } from "standardwebhooks";

export interface WebhookMessage {
  /** `webhook-id`: the same on every retry of the same event (see buildWebhookMessageId). */
  id: string;
  /** `webhook-timestamp`: when this attempt was signed (receivers refuse old ones; a retry is re-signed). */
  timestamp: Date;
  /** The exact bytes sent: the event JSON. */
  body: string;
}

// Decoding a secret is per secret, not per message: keep a few signers.
const signers = new Map<string, Webhook>();
const signer = (secret: string): Webhook => {
  let found = signers.get(secret);
  if (!found) {
    if (signers.size >= 1024) signers.clear();
    found = new Webhook(secret);
    signers.set(secret, found);
  }
  return found;
};

/** The `webhook-signature` header: one `v1,…` per secret, current first. */
export const signWebhook = (secrets: readonly string[], message: WebhookMessage): string =>
  secrets.map((secret) => signer(secret).sign(message.id, message.timestamp, message.body)).join(" ");

/** Every header of a signed request. */
export const webhookHeaders = (
  secrets: readonly string[],
  message: WebhookMessage,
): Record<string, string> => ({
  "content-type": "application/json",
  "user-agent": "brewcast-webhooks/1",
  "webhook-id": message.id,
  "webhook-timestamp": String(Math.floor(message.timestamp.getTime() / 1000)),
  "webhook-signature": signWebhook(secrets, message),
});
