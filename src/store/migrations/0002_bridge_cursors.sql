-- The bridge's durable cursors: the last seq the broker accepted, per
-- partner and per shop. Advanced only after every message of a batch was
-- accepted, so a crash re-publishes and never skips.

CREATE TABLE bridge_cursors (
  partner_id text PRIMARY KEY REFERENCES partners (id),
  published_seq bigint NOT NULL,
  occurred_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bridge_shop_cursors (
  partner_id text NOT NULL,
  shop_id text NOT NULL,
  published_seq bigint NOT NULL,
  occurred_at timestamptz,
  PRIMARY KEY (partner_id, shop_id),
  FOREIGN KEY (partner_id, shop_id) REFERENCES shops (partner_id, id)
);
