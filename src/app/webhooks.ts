/**
 * Webhooks' wiring: the SSRF guard (said loudly when relaxed), the signed
 * sender, the endpoints' store and their verification; closed in the
 * `background` phase. `startWebhookDelivery` adds the delivery
 * (src/webhooks/delivery.ts) in a process that runs a bridge: its own leader
 * lock, the doorbell, the metrics and the partner's MQTT status topic.
 */
import type { WebhooksRoutesDeps } from "../api/routes/webhooks-routes.ts";
import type { Config } from "../config/schema.ts";
import type { WebhookStore } from "../domain/webhooks.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Db } from "../store/db.ts";
import { createDeliveryLog } from "../store/delivery-log.ts";
import { createLeaderLock, WEBHOOK_LOCK_KEY } from "../store/leader-lock.ts";
import { createWebhookStore } from "../store/webhooks.ts";
import { createAddressGuard, formatAllowNets, parseAllowNets } from "../webhooks/address-guard.ts";
import {
  createWebhookDelivery,
  type WebhookDelivery,
  type WebhookStatusAnnouncement,
} from "../webhooks/delivery.ts";
import { createWebhookSender, type WebhookSender } from "../webhooks/sender.ts";
import { createWebhookVerifier } from "../webhooks/verification.ts";
import type { Shutdown } from "./shutdown.ts";

export interface StartedWebhooks {
  routes: WebhooksRoutesDeps;
  store: WebhookStore;
  sender: WebhookSender;
  /** Tell the delivery (once started) that an endpoint changed in this process. */
  onChange(listener: (endpointId: string) => void): void;
}

/** The store, telling `changed` which endpoint changed after every call that can change what is delivered where. */
const watchedStore = (store: WebhookStore, changed: (id: string) => void): WebhookStore => {
  const after =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>, idOf: (args: A, result: R) => string) =>
    async (...args: A): Promise<R> => {
      const result = await call(...args);
      changed(idOf(args, result));
      return result;
    };
  const second = <A extends unknown[]>(args: A) => String(args[1]);
  const first = <A extends unknown[]>(args: A) => String(args[0]);
  return {
    ...store,
    create: after(store.create, (_args, result) => result.endpoint.id),
    update: after(store.update, second),
    remove: after(store.remove, second),
    rotateSecret: after(store.rotateSecret, second),
    replay: after(store.replay, second),
    confirm: after(store.confirm, first),
    recordVerification: after(store.recordVerification, first),
    setStatus: after(store.setStatus, first),
  };
};

export const startWebhooks = (deps: {
  config: Config;
  log: Logger;
  db: Db;
  shutdown: Shutdown;
}): StartedWebhooks => {
  const { config, log } = deps;
  const guard = createAddressGuard({ allowNets: parseAllowNets(config.BREWCAST_WEBHOOK_ALLOW_NETS) });
  if (guard.allowNets.length > 0) {
    log.warn(
      { allow_nets: formatAllowNets(guard.allowNets) },
      "webhook SSRF guard relaxed: URLs in these networks are called, plain http included",
    );
  }
  const sender = createWebhookSender({ guard, timeoutMs: config.BREWCAST_WEBHOOK_TIMEOUT_MS });
  const listeners: ((id: string) => void)[] = [];
  const raw = createWebhookStore(deps.db);
  const store = watchedStore(raw, (id) => {
    for (const listener of listeners) listener(id);
  });
  const verifier = createWebhookVerifier({ store, sender, log: log.child({ component: "webhooks" }) });
  deps.shutdown.onStop("background", async () => {
    await verifier.settle();
    await sender.close();
  });
  return {
    routes: { store, verifier, guard, secretOverlapSeconds: config.BREWCAST_WEBHOOK_SECRET_OVERLAP_SECONDS },
    store: raw,
    sender,
    onChange: (listener) => listeners.push(listener),
  };
};

export const startWebhookDelivery = async (
  webhooks: StartedWebhooks,
  deps: {
    config: Config;
    log: Logger;
    db: Db;
    metrics: Metrics;
    shutdown: Shutdown;
    announce?: (announcement: WebhookStatusAnnouncement) => Promise<void>;
  },
): Promise<WebhookDelivery> => {
  const { config } = deps;
  const delivery = createWebhookDelivery({
    store: webhooks.store,
    events: await createDeliveryLog(deps.db),
    sender: webhooks.sender,
    lock: createLeaderLock(deps.db, WEBHOOK_LOCK_KEY),
    log: deps.log.child({ component: "webhook-delivery" }),
    retry: {
      initialMs: config.BREWCAST_WEBHOOK_RETRY_INITIAL_MS,
      maxMs: config.BREWCAST_WEBHOOK_RETRY_MAX_MS,
      giveUpMs: config.BREWCAST_WEBHOOK_GIVE_UP_MS,
    },
    timeoutMs: config.BREWCAST_WEBHOOK_TIMEOUT_MS,
    pollOnlyAfterMs: config.BREWCAST_WEBHOOK_POLL_ONLY_AFTER_MS,
    probeIntervalMs: config.BREWCAST_WEBHOOK_PROBE_INTERVAL_MS,
    ...(deps.announce ? { announce: deps.announce } : {}),
    onOutcome: (partner, outcome, count) => deps.metrics.webhookDeliveries.inc({ partner, outcome }, count),
  });
  webhooks.onChange((id) => delivery.endpointsChanged(id));
  // Before the sender closes (background): in-flight requests finish, nothing new starts.
  deps.shutdown.onStop("bridge", () => delivery.stop());
  await delivery.start();
  return delivery;
};
