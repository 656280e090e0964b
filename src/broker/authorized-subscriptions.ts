/**
 * A persistent session's stored subscriptions are only ever ones its client
 * may hold now. Wraps any aedes persistence through its public methods:
 *  - Aedes 1.2.0 (`storeSubscriptions` in lib/handlers/subscribe.js) stores the
 *    whole SUBSCRIBE, refused filters included, once any filter of it is
 *    granted; only the authorized ones are passed on here;
 *  - a session being restored gets back only what its client's credential may
 *    hold at this login (its scope may have narrowed while it was offline);
 *    the rest is removed from the store and counted.
 * Offline queues are filled from the stored subscriptions, so a refused filter
 * never collects anything either.
 */

interface StoredSubscription {
  topic: string;
  qos: number;
}

/** The subset of the aedes persistence API this wraps. */
export interface SubscriptionPersistence {
  addSubscriptions(client: { id: string }, subs: StoredSubscription[]): Promise<void>;
  removeSubscriptions(client: { id: string }, topics: string[]): Promise<void>;
  subscriptionsByClient(client: { id: string }): Promise<StoredSubscription[]>;
}

export interface SubscriptionAuthority {
  /** May this client (by namespaced id) hold this filter now? Undefined: the client is not logged in here. */
  mayHold(clientId: string, filter: string): boolean | undefined;
  /** Told how many stored subscriptions a restore dropped. */
  dropped(clientId: string, filters: string[]): void;
}

export const keepSubscriptionsAuthorized = (
  persistence: SubscriptionPersistence,
  authority: SubscriptionAuthority,
): void => {
  const add = persistence.addSubscriptions.bind(persistence);
  const byClient = persistence.subscriptionsByClient.bind(persistence);

  persistence.addSubscriptions = (client, subs) => {
    const allowed = subs.filter((sub) => authority.mayHold(client.id, sub.topic) === true);
    return allowed.length === 0 ? Promise.resolve() : add(client, allowed);
  };

  persistence.subscriptionsByClient = async (client) => {
    const stored = await byClient(client);
    const kept: StoredSubscription[] = [];
    const refused: StoredSubscription[] = [];
    for (const sub of stored) {
      const verdict = authority.mayHold(client.id, sub.topic);
      // Nobody to decide for: restore nothing, and keep the store as it is.
      if (verdict === undefined) return [];
      (verdict ? kept : refused).push(sub);
    }
    if (refused.length > 0) {
      const filters = refused.map((sub) => sub.topic);
      await persistence.removeSubscriptions(client, filters);
      authority.dropped(client.id, filters);
    }
    return kept;
  };
};
