-- When a grant ran out, recorded (with its audit event) by the sweep that noticed; NULL while
-- it is live or after an early revocation.
ALTER TABLE grants ADD COLUMN ended_at INTEGER;
CREATE INDEX grants_running_out ON grants(not_after) WHERE revoked_at IS NULL AND ended_at IS NULL;
