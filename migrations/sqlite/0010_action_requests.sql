-- Action requests: approvals AGT-governed agents ask for through the webhook (ADR-0030, schema
-- 1.0), held until a sponsor decides. One execution each: no grant, no duration. The presented
-- fields are kept exactly as sent; `input_digest` covers them, so the same id with another body
-- is told apart by it. Timestamps are INTEGER Unix milliseconds (UTC).

CREATE TABLE action_requests (
    id                      TEXT PRIMARY KEY,                      -- approval_request_id (ar_…)
    input_digest            TEXT NOT NULL,
    action_digest           TEXT NOT NULL,
    policy_decision_id      TEXT NOT NULL,
    agent_id                TEXT NOT NULL,                         -- as sent
    agent_did               TEXT REFERENCES agents(did),           -- the local agent, if known
    integration             TEXT,                                  -- the configured caller, if not an agent
    sponsor_id              TEXT REFERENCES sponsors(id),          -- the integration's sponsor
    subject_id              TEXT,
    operation               TEXT NOT NULL,
    target_resource         TEXT,
    policy_version          TEXT NOT NULL,
    approval_chain_id       TEXT NOT NULL,
    approval_chain_version  TEXT NOT NULL,
    expires_at_text         TEXT NOT NULL,                         -- as sent (the digest covers it)
    status                  TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    created_at              INTEGER NOT NULL,
    expires_at              INTEGER NOT NULL,
    decided_at              INTEGER,
    approver_id             TEXT REFERENCES sponsors(id),
    justification           TEXT
);
CREATE INDEX action_requests_pending ON action_requests(status, expires_at, id);
CREATE INDEX action_requests_by_agent ON action_requests(agent_did);
CREATE INDEX action_requests_by_sponsor ON action_requests(sponsor_id);
