/**
 * One connection's QoS 1 and 2 messages, in the order they were written, and
 * the position they add up to: the highest seq acknowledged IN ORDER. A
 * message acknowledged while an earlier one is still in flight moves nothing
 * until that earlier one is acknowledged too, so the position never passes
 * a message the client may not have. Pure: no I/O, no timers.
 *
 * A message carries a mark: the seq of the event it is, or the seq a
 * retained cursor it is vouches for (every event up to it was delivered
 * before it). Others (a device status) only keep their place in line.
 */

interface Entry {
  messageId: number;
  mark: number | undefined;
  /** Acknowledged (PUBACK, or PUBREC for QoS 2). */
  acked: boolean;
  /** Its packet id was taken by a later message before it was acknowledged: it can never be. */
  lost: boolean;
  /** The seq of the event it is, if it is one. */
  eventSeq: number | undefined;
}

export interface AckTracker {
  /** The highest seq acknowledged in order. */
  readonly position: number;
  /** The highest event seq written. */
  readonly sentSeq: number;
  /** Messages written and not acknowledged. */
  readonly inFlight: number;
  /** A QoS 1/2 message was written with this packet id; `eventSeq` when it is an event. */
  sent(messageId: number, mark: number | undefined, eventSeq: number | undefined): void;
  /** PUBACK, or PUBREC of QoS 2 (the client has it); true when the position moved. */
  acked(messageId: number): boolean;
  /** A PUBREL is outstanding for this packet id (until PUBCOMP). */
  pubrelSent(messageId: number): void;
  /** A PUBREL was sent for this packet id and its PUBCOMP has not come. */
  awaitingPubcomp(messageId: number): boolean;
  /** PUBCOMP: the packet id is free again. */
  completed(messageId: number): void;
  /** Event messages in flight: seq → packet id. */
  inflightIds(): Record<string, number>;
  pubrels(): number[];
}

export const createAckTracker = (start: {
  position: number;
  sentSeq: number;
  pubrels?: number[];
}): AckTracker => {
  let position = start.position;
  let sentSeq = Math.max(start.sentSeq, start.position);
  const line: Entry[] = [];
  let head = 0;
  const byId = new Map<number, Entry>();
  const pubrels = new Set<number>(start.pubrels ?? []);

  const advance = (): boolean => {
    let moved = false;
    while (head < line.length) {
      const entry = line[head]!;
      if (!entry.acked) break;
      if (entry.mark !== undefined && entry.mark > position) {
        position = entry.mark;
        moved = true;
      }
      head++;
    }
    // Compact now and then, not on every acknowledgement.
    if (head > 1024 && head * 2 > line.length) {
      line.splice(0, head);
      head = 0;
    }
    return moved;
  };

  return {
    get position() {
      return position;
    },
    get sentSeq() {
      return sentSeq;
    },
    get inFlight() {
      return line.length - head;
    },
    sent(messageId, mark, eventSeq) {
      const previous = byId.get(messageId);
      if (previous && !previous.acked) previous.lost = true;
      const entry: Entry = { messageId, mark, acked: false, lost: false, eventSeq };
      line.push(entry);
      byId.set(messageId, entry);
      if (eventSeq !== undefined && eventSeq > sentSeq) sentSeq = eventSeq;
    },
    acked(messageId) {
      const entry = byId.get(messageId);
      if (!entry || entry.acked || entry.lost) return false;
      entry.acked = true;
      byId.delete(messageId);
      return advance();
    },
    pubrelSent(messageId) {
      pubrels.add(messageId);
    },
    awaitingPubcomp: (messageId) => pubrels.has(messageId),
    completed(messageId) {
      pubrels.delete(messageId);
    },
    inflightIds() {
      const ids: Record<string, number> = {};
      // Everything before the head was acknowledged.
      for (let i = head; i < line.length; i++) {
        const entry = line[i]!;
        if (entry.eventSeq !== undefined && !entry.acked && !entry.lost)
          ids[entry.eventSeq] = entry.messageId;
      }
      return ids;
    },
    pubrels: () => [...pubrels],
  };
};
