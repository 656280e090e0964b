/**
 * What the consumers' child (bench/children/clients.ts) is asked for and answers: MQTT subscribers
 * and REST pollers that record when each event arrived, keyed by (partner, seq), in named buckets.
 */
import type { BenchPartner } from "./admin.ts";

export interface LatencyReport {
  bucket: string;
  /** Receipts matched to a commit. */
  received: number;
  /** Receipts expected: commits × consumers of that partner. */
  expected: number;
  /** Receipts of seqs this phase did not write (earlier phases, duplicates). */
  unmatched: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  requests: number;
  bytes: number;
  seconds: number;
}

export interface SubscriberSpec {
  url: string;
  username?: string;
  password?: string;
  filters: string[];
  bucket: string;
  /** CleanSession=0: a persistent session under `clientId` (default: a clean session, a random id). */
  persistent?: boolean;
  clientId?: string;
}

export interface PollerSpec {
  baseUrl: string;
  secret: string;
  bucket: string;
  intervalMs: number;
  seconds: number;
  limit: number;
}

/** A subscriber's session: CleanSession=1, or a persistent session (CleanSession=0). */
export type SessionKind = "clean" | "persistent";

/** `count` QoS 1 subscribers per partner on its orders and cursor; persistent ones under `${tag}-…` ids. */
export const subscriberSpecs = (
  mqttPort: unknown,
  partners: BenchPartner[],
  count: number,
  bucket: string,
  session: SessionKind,
  tag: string,
): SubscriberSpec[] =>
  partners.flatMap((p) =>
    Array.from({ length: count }, (_, i) => ({
      url: `mqtt://127.0.0.1:${mqttPort}`,
      username: p.credentialId,
      password: p.secret,
      filters: [`partners/${p.id}/shops/+/orders/+`, `partners/${p.id}/cursor`],
      bucket,
      ...(session === "persistent" ? { persistent: true, clientId: `${tag}-${p.id}-${i}` } : {}),
    })),
  );
