-- A delegation that names a new child registers it as `proposed`: linked to its parent, and
-- nobody (no token, no requests) until a human approves. SQLite cannot widen a CHECK in place,
-- so the table is rebuilt as its documentation describes. The migrations run on a connection
-- with foreign keys off, and the store checks every foreign key afterwards.
CREATE TABLE agents_new (
    did                  TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    public_key           TEXT NOT NULL UNIQUE,
    capabilities         TEXT NOT NULL,        -- JSON array of capability strings
    status               TEXT NOT NULL DEFAULT 'active'
                         CHECK (status IN ('proposed', 'active', 'suspended', 'revoked')),
    status_reason        TEXT,
    trust_score          INTEGER NOT NULL DEFAULT 500 CHECK (trust_score BETWEEN 0 AND 1000),
    parent_did           TEXT REFERENCES agents(did),
    delegation_depth     INTEGER NOT NULL DEFAULT 0 CHECK (delegation_depth >= 0),
    entra_object_id      TEXT,
    model                TEXT,
    runtime              TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    trust_positive_at    INTEGER,
    suspension_security  INTEGER NOT NULL DEFAULT 0,
    status_changed_at    INTEGER,
    status_changed_by    TEXT
);
INSERT INTO agents_new (did, name, public_key, capabilities, status, status_reason, trust_score,
                        parent_did, delegation_depth, entra_object_id, model, runtime, created_at,
                        updated_at, trust_positive_at, suspension_security, status_changed_at,
                        status_changed_by)
SELECT did, name, public_key, capabilities, status, status_reason, trust_score, parent_did,
       delegation_depth, entra_object_id, model, runtime, created_at, updated_at,
       trust_positive_at, suspension_security, status_changed_at, status_changed_by
FROM agents;
DROP TABLE agents;
ALTER TABLE agents_new RENAME TO agents;
CREATE INDEX agents_by_parent ON agents(parent_did);
