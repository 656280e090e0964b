/**
 * What a session persistence leaves to the persistence Aedes would use
 * without it (aedes-persistence in memory, or aedes-persistence-redis to
 * share them between broker nodes): retained messages, wills and inbound
 * QoS 2. Sessions themselves are positions in the log (session-persistence.ts).
 *
 * Imports nothing of ours.
 */
import type { Readable } from "node:stream";

/** What Aedes would use without us (memory or Redis): retained messages, wills, inbound QoS 2. */
export interface DelegatePersistence {
  setup(broker: unknown): Promise<void>;
  storeRetained(packet: unknown): Promise<void>;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
  incomingStorePacket(client: unknown, packet: unknown): Promise<void>;
  incomingGetPacket(client: unknown, packet: unknown): Promise<unknown>;
  incomingDelPacket(client: unknown, packet: unknown): Promise<void>;
  cleanIncoming?(client: unknown): Promise<void>;
  putWill(client: unknown, packet: unknown): Promise<void>;
  getWill(client: unknown): Promise<unknown>;
  delWill(client: unknown): Promise<unknown>;
  streamWill(brokers?: unknown): Readable;
  destroy(): Promise<void>;
}

/** The delegate's methods under the names Aedes calls them by. */
export const delegatedMethods = (delegate: DelegatePersistence) => ({
  storeRetained: (packet: unknown) => delegate.storeRetained(packet),
  createRetainedStream: (pattern: string) => delegate.createRetainedStream(pattern),
  createRetainedStreamCombi: (patterns: string[]) => delegate.createRetainedStreamCombi(patterns),
  incomingStorePacket: (client: unknown, packet: unknown) => delegate.incomingStorePacket(client, packet),
  incomingGetPacket: (client: unknown, packet: unknown) => delegate.incomingGetPacket(client, packet),
  incomingDelPacket: (client: unknown, packet: unknown) => delegate.incomingDelPacket(client, packet),
  cleanIncoming: async (client: unknown) => delegate.cleanIncoming?.(client),
  putWill: (client: unknown, packet: unknown) => delegate.putWill(client, packet),
  getWill: (client: unknown) => delegate.getWill(client),
  delWill: (client: unknown) => delegate.delWill(client),
  streamWill: (brokers?: unknown) => delegate.streamWill(brokers),
});
