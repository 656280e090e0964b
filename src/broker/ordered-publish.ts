/**
 * In-process publishes into Aedes, pipelined per partner without losing order.
 *
 * Why not simply call `aedes.publish` back to back: Aedes numbers each message
 * (`brokerCounter`) when it is published, and a subscriber drops any message
 * whose number is lower than the last it was handed. A message's path to the
 * emitter has more asynchronous steps at QoS 1 (the offline queue) and when
 * retained (the retained store), so a later message can reach the emitter
 * first and the earlier one is then dropped as a duplicate (aedes#994).
 *
 * So a partner's messages enter Aedes one after the other, each as soon as the
 * one before it reached the emitter: the emitter sees them in numbering order,
 * and a whole batch still leaves within one turn of the event loop instead of
 * one callback round per message. When the QoS changes, the next message waits
 * until the one before was fully delivered, so a QoS 0 event cannot overtake a
 * QoS 1 cursor on a subscriber's socket (a QoS 1 delivery to a persistent
 * session takes an extra asynchronous step before its write).
 *
 * Partners pipeline side by side: the ACLs never give one subscriber two
 * partners' topics, so numbering order only matters within a partner.
 */

export interface InProcessPacket {
  topic: string;
  payload: Buffer | string;
  qos: 0 | 1 | 2;
  retain: boolean;
}

/** The parts of an Aedes 1.2 instance this module relies on. */
export interface OrderedAedes {
  id: string;
  counter: number;
  mq: { emit(packet: { brokerId?: string; brokerCounter?: number }, done?: (error?: Error) => void): void };
  publish(packet: Record<string, unknown>, done: (error?: Error) => void): void;
}

interface ChainTail {
  qos: 0 | 1 | 2;
  /** Settles when the message reached the emitter (or failed before it). */
  emitted: Promise<void>;
  /** Settles when Aedes called back: delivered to every subscriber, or failed. */
  settled: Promise<void>;
}

/** The scope a message is ordered in: `partners/{p}` (or the first two levels of any topic). */
const orderingScope = (topic: string): string => {
  const second = topic.indexOf("/", topic.indexOf("/") + 1);
  return second < 0 ? topic : topic.slice(0, second);
};

export const createOrderedPublisher = (aedes: OrderedAedes) => {
  const reachedEmitter = new Map<number, () => void>();
  const { mq } = aedes;
  const emit = mq.emit.bind(mq);
  mq.emit = (packet, done) => {
    if (packet.brokerId === aedes.id && packet.brokerCounter !== undefined) {
      reachedEmitter.get(packet.brokerCounter)?.();
    }
    emit(packet, done);
  };

  const tails = new Map<string, ChainTail>();

  const send = (packet: InProcessPacket, onEmitted: () => void): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      // Number the message here (as Aedes would) so the emitter hook can recognise it.
      const brokerCounter = ++aedes.counter;
      const markEmitted = () => {
        reachedEmitter.delete(brokerCounter);
        onEmitted();
      };
      reachedEmitter.set(brokerCounter, markEmitted);
      aedes.publish(
        {
          cmd: "publish",
          topic: packet.topic,
          payload: typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload,
          qos: packet.qos,
          retain: packet.retain,
          dup: false,
          brokerId: aedes.id,
          brokerCounter,
        },
        (error?: Error) => {
          markEmitted();
          if (error) reject(error);
          else resolve();
        },
      );
    });

  /** Resolves when Aedes accepted the message (its callback); rejects with its error. */
  return (packet: InProcessPacket): Promise<void> => {
    const scope = orderingScope(packet.topic);
    const before = tails.get(scope);
    const gate =
      before === undefined ? undefined : before.qos === packet.qos ? before.emitted : before.settled;
    let onEmitted!: () => void;
    const emitted = new Promise<void>((resolve) => {
      onEmitted = resolve;
    });
    const delivery = gate ? gate.then(() => send(packet, onEmitted)) : send(packet, onEmitted);
    const settled = delivery.catch(() => undefined);
    const tail: ChainTail = { qos: packet.qos, emitted, settled };
    tails.set(scope, tail);
    // Forget an idle partner's chain, so the map holds only partners with publishes in flight.
    void settled.then(() => {
      if (tails.get(scope) === tail) tails.delete(scope);
    });
    return delivery;
  };
};
