/**
 * Persistent MQTT sessions as positions in the event log: what the broker
 * keeps of a session (no copies of events), and the ports it reads and
 * writes through. Implemented by the store, used by the sessions module.
 * Pure: types only.
 */
import type { LoggedEvent } from "./events.ts";
import type { PartnerState } from "./partners.ts";

export interface SessionSubscription {
  topic: string;
  qos: 0 | 1 | 2;
  /** MQTT 5 options, kept as given so a restore hands them back (Aedes 1.2 speaks 3.1.1: absent). */
  rh?: number;
  rap?: boolean;
  nl?: boolean;
  subscriptionIdentifier?: number;
}

/** What a session's connection has got to: written coalesced, and at disconnect. */
export interface SessionProgress {
  clientId: string;
  /** The highest seq the client acknowledged in order. Never moves back. */
  position: number;
  /** The highest seq written to the client. */
  sentSeq: number;
  /** QoS 1/2 event messages in flight: seq → packet id (re-sent with it, DUP=1). */
  inflight: Record<string, number>;
  /** QoS 2 packet ids whose PUBREL was sent and PUBCOMP not yet received. */
  pubrels: number[];
}

export interface SessionRecord extends SessionProgress {
  /** Null only for a client id no credential owns (never one of brewcast's logins). */
  credentialId: string | null;
  partnerId: string | null;
  /** The event log the position belongs to. */
  epoch: string | null;
  subscriptions: SessionSubscription[];
}

export interface SessionOwner {
  credentialId: string;
  partnerId: string;
}

export interface SessionStore {
  load(clientId: string): Promise<SessionRecord | undefined>;
  /**
   * Adds (or replaces, by topic) subscriptions, creating the session when it does not exist:
   * its position starts at what the bridge has published for the partner, so what is published
   * from then on is owed to it. Returns the session as stored.
   */
  addSubscriptions(
    clientId: string,
    owner: SessionOwner | null,
    subscriptions: SessionSubscription[],
  ): Promise<SessionRecord>;
  removeSubscriptions(clientId: string, topics: string[]): Promise<void>;
  delete(clientId: string): Promise<void>;
  /** Saves progress; a position or sent seq never moves back. Refreshes last seen. */
  saveProgress(progress: SessionProgress[]): Promise<void>;
  /** Refreshes the last seen time of connected sessions. */
  touch(clientIds: string[]): Promise<void>;
  /** Removes sessions unused for `ttlSeconds`, except `connected` ones; returns how many. */
  expire(ttlSeconds: number, connected: string[]): Promise<number>;
  countOffline(): Promise<{ subsCount: number; clientsCount: number }>;
  /** Client ids of sessions holding exactly this filter. */
  clientsSubscribedTo(topic: string): Promise<string[]>;
}

/** The event log as a resumed session reads it. */
export interface SessionLog {
  epoch(): Promise<string>;
  /**
   * The highest seq removed by retention that a session following this scope could have been
   * owed: the partner's, or with `shopId` the highest of that shop's events removed (0: none).
   */
  prunedThrough(partnerId: string, shopId?: string): Promise<number>;
  /** The partner's place on the degradation ladder: a replay pushes nothing where the bridge would not. */
  partnerState(partnerId: string): Promise<PartnerState | undefined>;
  /**
   * Events after `after` (or after the pruned point, if later), oldest first, at most `limit`; one
   * shop's only when `shopId` is given.
   */
  read(partnerId: string, after: number, limit: number, shopId?: string): Promise<LoggedEvent[]>;
}
