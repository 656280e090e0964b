-- The webhook ladder's third step (issue 18): an endpoint failing for hours becomes
-- `poll_only`: it is pushed nothing, only probed with its head-of-line event once per
-- probe interval; its partner reads the REST history meanwhile. Still owed every event.
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_status_check;
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_status_check
  CHECK (status IN ('pending', 'active', 'throttled', 'poll_only', 'disabled'));
