-- The event log: partners, shops, credentials, orders and their events.
-- seq is gapless and strictly increasing per partner in commit order:
-- appending an event first increments partners.head_seq, which row-locks the
-- partner until commit, so seq N+1 cannot commit (or be read) before seq N.

CREATE TABLE event_log (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  epoch uuid NOT NULL DEFAULT gen_random_uuid(),
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO event_log DEFAULT VALUES;

CREATE TABLE partners (
  id text PRIMARY KEY CHECK (id ~ '^[a-z0-9-]{1,64}$'),
  name text NOT NULL,
  state text NOT NULL DEFAULT 'normal' CHECK (state IN ('normal', 'throttled', 'poll_only', 'suspended')),
  qos smallint NOT NULL DEFAULT 1 CHECK (qos BETWEEN 0 AND 2),
  head_seq bigint NOT NULL DEFAULT 0,
  -- Highest seq removed by retention; a cursor below it can no longer be served.
  pruned_through_seq bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shops (
  partner_id text NOT NULL REFERENCES partners (id),
  id text NOT NULL CHECK (id ~ '^[a-z0-9-]{1,64}$'),
  name text NOT NULL,
  last_seq bigint,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (partner_id, id)
);

CREATE TABLE credentials (
  id text PRIMARY KEY,
  partner_id text NOT NULL REFERENCES partners (id),
  kind text NOT NULL CHECK (kind IN ('backend', 'device')),
  shop_id text,
  -- SHA-256 of the secret; secrets are 256-bit random, so a fast hash is enough.
  secret_hash bytea NOT NULL UNIQUE,
  cert_fingerprint text UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  FOREIGN KEY (partner_id, shop_id) REFERENCES shops (partner_id, id),
  CHECK ((kind = 'device') = (shop_id IS NOT NULL))
);
CREATE INDEX credentials_partner ON credentials (partner_id);

CREATE TABLE orders (
  id uuid PRIMARY KEY,
  partner_id text NOT NULL,
  shop_id text NOT NULL,
  status text NOT NULL,
  items jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  last_seq bigint NOT NULL,
  FOREIGN KEY (partner_id, shop_id) REFERENCES shops (partner_id, id)
);
CREATE INDEX orders_partner_id ON orders (partner_id, id);
CREATE INDEX orders_partner_shop_id ON orders (partner_id, shop_id, id);

CREATE TABLE order_events (
  partner_id text NOT NULL,
  seq bigint NOT NULL,
  shop_id text NOT NULL,
  order_id uuid NOT NULL,
  type text NOT NULL CHECK (type IN ('order.created', 'order.status_changed')),
  occurred_at timestamptz NOT NULL,
  prev_shop_seq bigint,
  order_snapshot jsonb NOT NULL,
  PRIMARY KEY (partner_id, seq)
);
CREATE INDEX order_events_shop ON order_events (partner_id, shop_id, seq);
CREATE INDEX order_events_created ON order_events (partner_id, seq) WHERE type = 'order.created';
CREATE INDEX order_events_created_shop ON order_events (partner_id, shop_id, seq) WHERE type = 'order.created';
CREATE INDEX order_events_occurred ON order_events (occurred_at);

CREATE TABLE idempotency_keys (
  partner_id text NOT NULL REFERENCES partners (id),
  key text NOT NULL,
  request_hash bytea NOT NULL,
  order_id uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (partner_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
