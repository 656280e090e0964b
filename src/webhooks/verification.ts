/**
 * The verification request: before a new or changed URL is sent any event,
 * it must prove it is a webhook receiver that holds the endpoint's secret's
 * counterpart and wants these events. brewcast POSTs, signed like any
 * delivery, `{"type":"webhook.verification","challenge":"<random>"}`; the
 * receiver answers 2xx with `{"challenge":"<the same>"}`. (An operator's
 * confirmation is the second condition, see domain/webhooks.ts.)
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { AttemptInput, WebhookEndpoint, WebhookStore } from "../domain/webhooks.ts";
import type { WebhookSender } from "./sender.ts";

export interface VerificationOutcome {
  ok: boolean;
  attempt: AttemptInput;
}

/** Sends one challenge to `url` and judges the answer. */
export const sendVerification = async (
  sender: WebhookSender,
  target: { url: string; secrets: readonly string[] },
): Promise<VerificationOutcome> => {
  const challenge = randomBytes(24).toString("base64url");
  const id = `verify_${randomBytes(12).toString("hex")}`;
  const body = JSON.stringify({ type: "webhook.verification", challenge });
  const result = await sender.sendWebhook(target, { id, timestamp: new Date(), body });
  let error = result.error ?? null;
  if (result.ok) {
    let echoed: unknown;
    try {
      echoed = (JSON.parse(result.body) as { challenge?: unknown }).challenge;
    } catch {
      echoed = undefined;
    }
    if (echoed !== challenge) error = "the answer did not echo the challenge";
  }
  return {
    ok: error === null,
    attempt: {
      kind: "verification",
      webhookId: id,
      seq: null,
      status: result.status,
      latencyMs: result.latencyMs,
      error,
    },
  };
};

export interface WebhookVerifier {
  /** Verifies the endpoint's current URL now and records the outcome. */
  verify(endpointId: string): Promise<{ endpoint: WebhookEndpoint; outcome: VerificationOutcome }>;
  /** The same, in the background (after a create or a URL change); failures are logged. */
  verifyLater(endpointId: string): void;
  /** Waits for background verifications (shutdown, tests). */
  settle(): Promise<void>;
}

export const createWebhookVerifier = (deps: {
  store: WebhookStore;
  sender: WebhookSender;
  log: Logger;
}): WebhookVerifier => {
  const running = new Set<Promise<unknown>>();
  const verify = async (endpointId: string) => {
    const target = await deps.store.target(endpointId);
    const outcome = await sendVerification(deps.sender, target);
    deps.log.info(
      { endpoint: endpointId, ok: outcome.ok, status: outcome.attempt.status, error: outcome.attempt.error },
      "webhook verification",
    );
    const endpoint = await deps.store.recordVerification(endpointId, target.url, outcome.ok, outcome.attempt);
    return { endpoint, outcome };
  };
  return {
    verify,
    verifyLater(endpointId) {
      const work = verify(endpointId)
        .catch((error) => deps.log.warn({ err: error, endpoint: endpointId }, "webhook verification failed"))
        .finally(() => running.delete(work));
      running.add(work);
    },
    async settle() {
      while (running.size > 0) await Promise.all([...running]);
    },
  };
};
