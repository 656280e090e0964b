/**
 * Redis scale-out: aedes-persistence-redis 12 (sessions, subscriptions,
 * retained messages, offline queues, wills) and mqemitter-redis 7.2.1
 * (message fan-out between broker nodes), both under one key/channel prefix
 * so that several deployments or test runs can share a Redis.
 */
import { createRequire } from "node:module";
import { Redis } from "ioredis";

const require = createRequire(import.meta.url);

interface Closable {
  destroy(): Promise<void>;
}

export interface RedisBackend {
  persistence: unknown;
  mq: unknown;
  close(): Promise<void>;
}

export const createRedisBackend = (url: string, prefix: string): RedisBackend => {
  const redisPersistence = require("aedes-persistence-redis") as (opts: { conn: Redis }) => Closable;
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
  let closed = false;
  return {
    persistence,
    mq,
    async close() {
      if (closed) return;
      closed = true;
      // Aedes closes the emitter itself; the persistence is ours to end.
      await persistence.destroy().catch(() => undefined);
    },
  };
};
