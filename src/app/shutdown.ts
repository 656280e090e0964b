/**
 * Shutdown in named phases, whatever the start order: the bridge finishes its
 * in-flight publishes and commits its cursors while the broker is still up;
 * the broker then closes every MQTT client (WebSocket ones hold the HTTP
 * server open); HTTP stops accepting and finishes its requests; their doorbell
 * rings go out; background timers stop; the database closes last.
 */
import type { Logger } from "../log.ts";

const PHASE = { bridge: 1, broker: 2, http: 3, doorbell: 4, background: 5, database: 9 } as const;
export type Phase = keyof typeof PHASE;

export interface Shutdown {
  /** Registers what to stop in `phase`; phases run in their order, each one's stops in registration order. */
  onStop(phase: Phase, stop: () => Promise<void>): void;
  /** Runs every registered stop once, logging (not throwing) the ones that fail. */
  stopAll(): Promise<void>;
}

export const createShutdown = (log: Logger): Shutdown => {
  const stops: { phase: Phase; stop: () => Promise<void> }[] = [];
  return {
    onStop: (phase, stop) => {
      stops.push({ phase, stop });
    },
    async stopAll() {
      const ordered = stops.splice(0).sort((a, b) => PHASE[a.phase] - PHASE[b.phase]);
      for (const { phase, stop } of ordered) {
        const started = Date.now();
        await stop().catch((error) => log.error({ err: error, phase }, "stop failed"));
        log.debug({ phase, ms: Date.now() - started }, "stopped");
      }
    },
  };
};
