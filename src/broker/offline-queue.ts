/**
 * Bounds what Aedes persistence keeps for persistent sessions. Wraps any
 * aedes persistence (memory or Redis) through its public methods only:
 *  - while a client is offline its queue holds at most `max` messages;
 *    beyond it the oldest is dropped and counted (the REST history recovers it);
 *  - a message is queued at most at the QoS its subscription granted, and
 *    QoS 0 subscriptions queue nothing ([MQTT-3.8.4-6], [MQTT-4.3.1]);
 *  - `forget(clientId)` empties a session (used by session expiry);
 *  - a queued message already acknowledged is not a reason to disconnect (see outgoingUpdate).
 * The per-client index lives in this process: with several Redis nodes each
 * node bounds what it enqueued itself.
 */

interface QueuedPacket {
  brokerId: string;
  brokerCounter: number;
  messageId?: number | undefined;
  qos: number;
  [key: string]: unknown;
}

interface Sub {
  clientId: string;
  topic: string;
  qos: number;
}

/** The subset of the aedes persistence API used here. */
export interface OutgoingPersistence {
  outgoingEnqueue(sub: Sub, packet: QueuedPacket): Promise<void>;
  outgoingEnqueueCombi(subs: Sub[], packet: QueuedPacket): Promise<void>;
  outgoingUpdate(client: { id: string }, packet: QueuedPacket): Promise<void>;
  outgoingClearMessageId(client: { id: string }, packet: { messageId?: number }): Promise<unknown>;
  cleanSubscriptions(client: { id: string }): Promise<void>;
}

export interface OfflineQueueCap {
  readonly dropped: () => number;
  /** Empties a client's queue and subscriptions (an expired session). */
  forget(clientId: string): Promise<void>;
  queued(clientId: string): number;
}

const keyOf = (p: { brokerId: string; brokerCounter: number }): string => `${p.brokerId}:${p.brokerCounter}`;

export const capOfflineQueues = (
  persistence: OutgoingPersistence,
  max: number,
  /** Connected clients are not trimmed: their queue is in flight, and trimming it would race the flush. */
  isConnected: (clientId: string) => boolean,
): OfflineQueueCap => {
  const inner = {
    enqueueCombi: persistence.outgoingEnqueueCombi.bind(persistence),
    update: persistence.outgoingUpdate.bind(persistence),
    clear: persistence.outgoingClearMessageId.bind(persistence),
  };
  /** clientId → queued packet keys in arrival order → the messageId given on delivery, if any. */
  const queues = new Map<string, Map<string, number | undefined>>();
  let dropped = 0;
  let dropIds = 0;

  const dropEntry = async (clientId: string, key: string, messageId: number | undefined): Promise<void> => {
    const [brokerId, counter] = [
      key.slice(0, key.lastIndexOf(":")),
      Number(key.slice(key.lastIndexOf(":") + 1)),
    ];
    // Mark it with a message id no client uses, then clear by that id: works on any persistence.
    const id = messageId ?? -++dropIds;
    if (messageId === undefined) {
      await inner.update({ id: clientId }, { brokerId, brokerCounter: counter, messageId: id, qos: 1 });
    }
    await inner.clear({ id: clientId }, { messageId: id });
  };

  const track = async (clientId: string, packet: QueuedPacket): Promise<void> => {
    let queue = queues.get(clientId);
    if (!queue) {
      queue = new Map();
      queues.set(clientId, queue);
    }
    queue.set(keyOf(packet), undefined);
    if (isConnected(clientId)) return;
    while (queue.size > max) {
      const [oldest, messageId] = queue.entries().next().value as [string, number | undefined];
      queue.delete(oldest);
      dropped++;
      await dropEntry(clientId, oldest, messageId).catch(() => undefined);
    }
  };

  persistence.outgoingEnqueueCombi = async (subs, packet) => {
    // Aedes asks for every QoS 1/2 publish; with no persistent session subscribed there is nothing to do.
    if (subs.length === 0) return;
    // Group by the QoS each subscription granted; QoS 0 subscriptions are not queued.
    const byQos = new Map<number, Sub[]>();
    for (const sub of subs) {
      const qos = Math.min(sub.qos ?? 0, packet.qos);
      if (qos === 0) continue;
      const group = byQos.get(qos) ?? [];
      group.push(sub);
      byQos.set(qos, group);
    }
    for (const [qos, group] of byQos) {
      await inner.enqueueCombi(group, qos === packet.qos ? packet : { ...packet, qos });
      for (const sub of group) await track(sub.clientId, packet);
    }
  };
  persistence.outgoingEnqueue = (sub, packet) => persistence.outgoingEnqueueCombi([sub], packet);
  persistence.outgoingUpdate = async (client, packet) => {
    try {
      await inner.update(client, packet);
    } catch (error) {
      // Aedes 1.2.0 race: a message published between CONNACK and the queue flush is delivered live
      // and is also in the flush's snapshot; once acknowledged, the flush no longer finds it and Aedes
      // would disconnect the client. Sending it again is at-least-once; disconnecting helps no one.
      if ((error as Error).message !== "no such packet") throw error;
      return;
    }
    const queue = queues.get(client.id);
    if (queue && packet.brokerId !== undefined && queue.has(keyOf(packet))) {
      queue.set(keyOf(packet), packet.messageId);
    }
  };
  const untrack = (clientId: string, messageId: number | undefined, removed: QueuedPacket | undefined) => {
    const queue = queues.get(clientId);
    if (queue) {
      if (removed?.brokerId !== undefined) queue.delete(keyOf(removed));
      else {
        for (const [key, id] of queue) {
          if (id === messageId) {
            queue.delete(key);
            break;
          }
        }
      }
      if (queue.size === 0) queues.delete(clientId);
    }
    return removed;
  };
  // Called for every PUBACK: one `then`, not an async function, whose frame and promises were a tenth
  // of what the broker allocated in a 1→1000 fan-out.
  persistence.outgoingClearMessageId = (client, packet) =>
    inner
      .clear(client, packet)
      .then((removed) => untrack(client.id, packet.messageId, removed as QueuedPacket | undefined));

  return {
    dropped: () => dropped,
    queued: (clientId) => queues.get(clientId)?.size ?? 0,
    async forget(clientId) {
      const queue = queues.get(clientId);
      queues.delete(clientId);
      if (queue) {
        for (const [key, messageId] of queue)
          await dropEntry(clientId, key, messageId).catch(() => undefined);
      }
      await persistence.cleanSubscriptions({ id: clientId });
    },
  };
};
