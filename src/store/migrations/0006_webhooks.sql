-- Webhook endpoints (Standard Webhooks): where a partner's events are POSTed,
-- a durable delivery position per endpoint, a bounded history of attempts,
-- and an audit log of every change.
--
-- Secrets: the server signs every request with HMAC-SHA256, so it must hold
-- the key itself (unlike credential secrets, which are stored as hashes).
-- They are protected as the event log is, by database access control: a
-- database reader already reads every order the key would sign. The API
-- returns a secret once (create, rotate) and never logs it.

CREATE TABLE webhook_endpoints (
  -- `we_` and 20 lower-case base32 characters.
  id text PRIMARY KEY,
  partner_id text NOT NULL REFERENCES partners (id),
  url text NOT NULL,
  -- Filters: one shop (null: every shop); event types (empty: every type).
  shop_id text,
  types text[] NOT NULL DEFAULT '{}',
  description text NOT NULL DEFAULT '',
  -- pending: the current URL has not yet both echoed the verification challenge and been
  -- confirmed by an operator; it is sent nothing. active and throttled are delivered to;
  -- disabled is not (an operator, or the receiver answering 410 Gone).
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'throttled', 'disabled')),
  status_reason text,
  -- `whsec_` + base64 of 32 random bytes. During a rotation's overlap the previous one signs too.
  secret text NOT NULL,
  previous_secret text,
  previous_secret_expires_at timestamptz,
  -- When the current URL echoed a signed challenge; null until then, reset when the URL changes.
  verified_at timestamptz,
  -- When and by whom (`admin`) the current URL was confirmed; reset when the URL changes.
  confirmed_at timestamptz,
  confirmed_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (partner_id, shop_id) REFERENCES shops (partner_id, id),
  CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX webhook_endpoints_partner ON webhook_endpoints (partner_id, created_at);

-- The delivery loop's durable position: the highest seq of the partner's log the endpoint
-- has been handed (accepted or skipped by its filters). `generation` grows with every replay,
-- so a loop that read the position before a replay cannot commit over it (compare and set).
CREATE TABLE webhook_positions (
  endpoint_id text PRIMARY KEY REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  position bigint NOT NULL CHECK (position >= 0),
  generation bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The latest attempts per endpoint (deliveries and verification requests), trimmed to a bound.
CREATE TABLE webhook_attempts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  endpoint_id text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  at timestamptz NOT NULL DEFAULT now(),
  kind text NOT NULL CHECK (kind IN ('delivery', 'verification')),
  webhook_id text NOT NULL,
  -- The event delivered (null for a verification request).
  seq bigint,
  -- The receiver's HTTP status; null when there was none (refused address, timeout, reset).
  status integer,
  latency_ms integer NOT NULL,
  error text
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);

-- Every change to an endpoint. No foreign key: the audit outlives a deleted endpoint.
CREATE TABLE webhook_audit (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  endpoint_id text NOT NULL,
  partner_id text NOT NULL,
  -- The credential id of the partner's back end, `admin`, or `delivery` (the loop, e.g. on 410).
  actor text NOT NULL,
  action text NOT NULL,
  old_url text,
  new_url text,
  detail jsonb NOT NULL DEFAULT '{}',
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_audit_endpoint ON webhook_audit (endpoint_id, id);
CREATE INDEX webhook_audit_partner ON webhook_audit (partner_id, id);
