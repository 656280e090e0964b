/**
 * Redis scale-out: mqemitter-redis 7.2.1 (message fan-out between broker
 * nodes) and aedes-persistence-redis 12 for what the nodes must share
 * besides sessions: retained messages, wills and inbound QoS 2. Persistent
 * sessions are in the database (src/sessions/), not here. Both under one
 * key/channel prefix so that several deployments or test runs can share a Redis.
 */
import { createRequire } from "node:module";
import { Redis } from "ioredis";

const require = createRequire(import.meta.url);

export interface RedisBackend {
  /** Ended by whoever ends the broker's persistence (it delegates to this one). */
  persistence: unknown;
  mq: unknown;
}

export const createRedisBackend = (url: string, prefix: string): RedisBackend => {
  const redisPersistence = require("aedes-persistence-redis") as (opts: { conn: Redis }) => unknown;
  const { MQEmitterRedisPrefix } = require("mqemitter-redis") as {
    MQEmitterRedisPrefix: new (prefix: string, opts: { pubConn: Redis; subConn: Redis }) => unknown;
  };
  const conn = new Redis(url, { keyPrefix: prefix, lazyConnect: false });
  const persistence = redisPersistence({ conn });
  // Our own connections: the subscriber must not run a ready check (INFO is refused in subscriber mode).
  const mq = new MQEmitterRedisPrefix(prefix, {
    pubConn: new Redis(url, { enableAutoPipelining: true }),
    subConn: new Redis(url, { enableReadyCheck: false, enableAutoPipelining: true }),
  });
  return { persistence, mq };
};
