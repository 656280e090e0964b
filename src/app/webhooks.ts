/**
 * Webhooks' wiring: the SSRF guard (said loudly when relaxed), the signed
 * sender, the endpoints' store and their verification; closed in the
 * `background` phase.
 */
import type { WebhooksRoutesDeps } from "../api/routes/webhooks-routes.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log.ts";
import type { Db } from "../store/db.ts";
import { createWebhookStore } from "../store/webhooks.ts";
import { createAddressGuard, formatAllowNets, parseAllowNets } from "../webhooks/address-guard.ts";
import { createWebhookSender } from "../webhooks/sender.ts";
import { createWebhookVerifier } from "../webhooks/verification.ts";
import type { Shutdown } from "./shutdown.ts";

export const startWebhooks = (deps: {
  config: Config;
  log: Logger;
  db: Db;
  shutdown: Shutdown;
}): WebhooksRoutesDeps => {
  const { config, log } = deps;
  const guard = createAddressGuard({ allowNets: parseAllowNets(config.BREWCAST_WEBHOOK_ALLOW_NETS) });
  if (guard.allowNets.length > 0) {
    log.warn(
      { allow_nets: formatAllowNets(guard.allowNets) },
      "webhook SSRF guard relaxed: URLs in these networks are called, plain http included",
    );
  }
  const sender = createWebhookSender({ guard, timeoutMs: config.BREWCAST_WEBHOOK_TIMEOUT_MS });
  const store = createWebhookStore(deps.db);
  const verifier = createWebhookVerifier({ store, sender, log: log.child({ component: "webhooks" }) });
  deps.shutdown.onStop("background", async () => {
    await verifier.settle();
    await sender.close();
  });
  return { store, verifier, guard, secretOverlapSeconds: config.BREWCAST_WEBHOOK_SECRET_OVERLAP_SECONDS };
};
