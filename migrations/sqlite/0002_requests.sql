-- Just-in-time elevation and delegation: requests, decisions, time-bound grants, suspension and
-- trust history. Timestamps are INTEGER Unix milliseconds (UTC).

ALTER TABLE agents ADD COLUMN trust_positive_at INTEGER;      -- last positive trust signal (decay clock)
ALTER TABLE agents ADD COLUMN suspension_security INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN status_changed_at INTEGER;
ALTER TABLE agents ADD COLUMN status_changed_by TEXT;
UPDATE agents SET trust_positive_at = created_at WHERE trust_positive_at IS NULL;

CREATE TABLE requests (
    id                 TEXT PRIMARY KEY,
    kind               TEXT NOT NULL CHECK (kind IN ('elevation', 'delegation')),
    agent_did          TEXT NOT NULL REFERENCES agents(did),   -- who asks (a delegation's parent)
    child_did          TEXT REFERENCES agents(did),            -- a delegation's child
    capabilities       TEXT NOT NULL,                          -- JSON array
    duration_seconds   INTEGER NOT NULL CHECK (duration_seconds > 0),
    justification      TEXT NOT NULL,
    ticket             TEXT,
    context            TEXT,
    on_behalf_of       TEXT,
    status             TEXT NOT NULL
                       CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
    reason             TEXT,                                   -- why it ended (approval_fatigue, suspended, …)
    requirement        TEXT NOT NULL,                          -- JSON: policy at submission
    trust_score        INTEGER NOT NULL,                       -- the agent's score at submission
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    decided_at         INTEGER,
    grant_id           TEXT
);
CREATE INDEX requests_pending ON requests(status, expires_at);
CREATE INDEX requests_by_agent ON requests(agent_did, created_at);
CREATE INDEX requests_by_child ON requests(child_did);

CREATE TABLE request_decisions (
    request_id        TEXT NOT NULL REFERENCES requests(id),
    approver_id       TEXT NOT NULL REFERENCES sponsors(id),
    decision          TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    duration_seconds  INTEGER,
    capabilities      TEXT,                                    -- JSON array, approvals only
    justification     TEXT NOT NULL,
    at                INTEGER NOT NULL,
    PRIMARY KEY (request_id, approver_id)
);

CREATE TABLE grants (
    id               TEXT PRIMARY KEY,
    agent_did        TEXT NOT NULL REFERENCES agents(did),
    capabilities     TEXT NOT NULL,                            -- JSON array
    not_before       INTEGER NOT NULL,
    not_after        INTEGER NOT NULL,
    request_id       TEXT NOT NULL REFERENCES requests(id),
    source_grant_id  TEXT REFERENCES grants(id),               -- a delegated grant's parent grant
    revoked_at       INTEGER,
    revoked_by       TEXT,
    revoke_reason    TEXT,
    CHECK (not_after > not_before)
);
CREATE INDEX grants_by_agent ON grants(agent_did, not_after);
CREATE INDEX grants_by_source ON grants(source_grant_id);

-- Which grants an access token carries, so revoking a grant makes those tokens inactive.
CREATE TABLE token_grants (
    grant_id  TEXT NOT NULL REFERENCES grants(id),
    jti       TEXT NOT NULL REFERENCES access_tokens(jti),
    PRIMARY KEY (grant_id, jti)
);

CREATE TABLE trust_events (
    id           INTEGER PRIMARY KEY,
    agent_did    TEXT NOT NULL REFERENCES agents(did),
    at           INTEGER NOT NULL,
    delta        INTEGER NOT NULL,
    score_after  INTEGER NOT NULL,
    reason       TEXT NOT NULL
);
CREATE INDEX trust_events_by_agent ON trust_events(agent_did, at);
