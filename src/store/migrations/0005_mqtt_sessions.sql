-- Persistent MQTT sessions (CleanSession=0) as positions in the event log:
-- no copies of events, only where each session stands. A resumed session is
-- sent the log after `position`, filtered by its subscriptions, on any broker
-- node, after any restart.

CREATE TABLE mqtt_sessions (
  -- The client id as the broker knows it: `{credential}/{client id}`.
  client_id text PRIMARY KEY,
  -- The owning credential and its partner (null only for ids no credential owns).
  credential_id text REFERENCES credentials (id),
  partner_id text REFERENCES partners (id),
  -- The log the position belongs to; another epoch ends the session.
  epoch uuid,
  -- The highest seq the client acknowledged in order; written coalesced, so
  -- a crash re-delivers what came after, never skips.
  position bigint NOT NULL DEFAULT 0,
  -- The highest seq written to the client: re-sent ones up to it carry DUP=1.
  sent_seq bigint NOT NULL DEFAULT 0,
  -- Authorized subscriptions: [{ "topic", "qos" }].
  subscriptions jsonb NOT NULL DEFAULT '[]',
  -- QoS 1 and 2 messages in flight at the last write: { "seq": packet id }, and
  -- QoS 2 packet ids waiting for PUBCOMP; re-sent with these ids [MQTT-4.4.0-1].
  inflight jsonb NOT NULL DEFAULT '{}',
  pubrels integer[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Refreshed while connected; a session unused for BREWCAST_SESSION_TTL is removed.
  last_seen timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mqtt_sessions_last_seen ON mqtt_sessions (last_seen);
CREATE INDEX mqtt_sessions_credential ON mqtt_sessions (credential_id);
