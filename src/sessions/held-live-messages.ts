/**
 * Live messages on their way to a persistent session while its replay runs:
 * held back, to be sent after the log in the order they came (replay.ts);
 * once the replay is done, live events it already sent are dropped by seq.
 *
 * Imports the session's shape only (live-session.ts, replay-plan.ts).
 */
import { isOrderEventTopic, type LiveSession } from "./live-session.ts";
import { readLeadingSeq } from "./replay-plan.ts";

/** Live messages held back during a replay; beyond it they are dropped and the log is read again. */
const HELD_MAX = 10_000;

export interface ForwardedPacket {
  topic: string;
  payload?: Buffer | string;
  qos: number;
  retain?: boolean;
  brokerId?: string;
}

/** The packet to write now, or null: held for after the replay, or already sent by it. */
export const holdOrPass = <P extends ForwardedPacket>(
  session: LiveSession | undefined,
  packet: P,
  stats: { heldDropped: number },
): P | null => {
  if (session === undefined) return packet;
  const held = session.held;
  if (held !== undefined) {
    if (held.packets.length >= HELD_MAX) {
      stats.heldDropped += held.packets.length;
      held.packets.length = 0;
      held.overflows++;
    }
    held.packets.push({
      topic: packet.topic,
      payload:
        typeof packet.payload === "string"
          ? Buffer.from(packet.payload)
          : (packet.payload ?? Buffer.alloc(0)),
      qos: packet.qos as 0 | 1 | 2,
      retain: packet.retain ?? false,
    });
    session.wake?.();
    return null;
  }
  if (session.sentByReplay !== undefined && isOrderEventTopic(packet.topic)) {
    const seq = packet.payload === undefined ? undefined : readLeadingSeq(packet.payload);
    if (seq !== undefined && seq <= session.sentByReplay) return null;
    session.sentByReplay = undefined;
  }
  return packet;
};
