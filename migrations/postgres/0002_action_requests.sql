-- Action requests: approvals AGT-governed agents ask for through the webhook (ADR-0030, schema
-- 1.0), held until a sponsor decides; the same table as SQLite's 0010.

CREATE TABLE action_requests (
    id                      TEXT COLLATE "C" PRIMARY KEY,
    input_digest            TEXT NOT NULL,
    action_digest           TEXT NOT NULL,
    policy_decision_id      TEXT NOT NULL,
    agent_id                TEXT COLLATE "C" NOT NULL,
    agent_did               TEXT COLLATE "C" REFERENCES agents(did),
    integration             TEXT COLLATE "C",
    sponsor_id              TEXT COLLATE "C" REFERENCES sponsors(id),
    subject_id              TEXT,
    operation               TEXT NOT NULL,
    target_resource         TEXT,
    policy_version          TEXT NOT NULL,
    approval_chain_id       TEXT NOT NULL,
    approval_chain_version  TEXT NOT NULL,
    expires_at_text         TEXT NOT NULL,
    status                  TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    created_at              BIGINT NOT NULL,
    expires_at              BIGINT NOT NULL,
    decided_at              BIGINT,
    approver_id             TEXT COLLATE "C" REFERENCES sponsors(id),
    justification           TEXT
);
CREATE INDEX action_requests_pending ON action_requests(status, expires_at, id);
CREATE INDEX action_requests_by_agent ON action_requests(agent_did);
CREATE INDEX action_requests_by_sponsor ON action_requests(sponsor_id);
