-- The degradation ladder: normal → throttled → poll_only → suspended.
-- An operator may pin a partner's state (the monitor then leaves it alone);
-- every transition is audited.

ALTER TABLE partners ADD COLUMN state_pinned boolean NOT NULL DEFAULT false;
ALTER TABLE partners ADD COLUMN state_changed_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE partner_state_audit (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  partner_id text NOT NULL REFERENCES partners (id),
  from_state text NOT NULL,
  to_state text NOT NULL,
  pinned boolean NOT NULL,
  actor text NOT NULL,
  reason text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX partner_state_audit_partner ON partner_state_audit (partner_id, id);
