-- The governance server's schema on PostgreSQL: the same tables and columns as the SQLite
-- store after its migrations 0001 to 0009, so one set of row conversions reads both.
-- Timestamps are BIGINT Unix milliseconds (UTC); lists and objects are JSON kept as TEXT, exactly
-- as written, so the audit chain's details hash as they were stored. Text is compared and sorted
-- by code point (COLLATE "C"), as SQLite's BINARY collation does, so pages and orders are the
-- same on both. `row_no` keeps insertion order where SQLite's store orders by rowid. Free text
-- that may hold any character (a request's justification, context and reason, a decision's
-- justification) is a JSON string (`json`): `text` cannot hold U+0000.

CREATE TABLE signing_keys (
    kid            TEXT COLLATE "C" PRIMARY KEY,
    private_pkcs8  BYTEA NOT NULL,
    public_key     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    retired_at     BIGINT,
    publish_until  BIGINT
);

CREATE TABLE sponsors (
    id             TEXT COLLATE "C" PRIMARY KEY,
    username       TEXT COLLATE "C" NOT NULL UNIQUE,
    display_name   TEXT COLLATE "C" NOT NULL,
    roles          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    source         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE agents (
    did                  TEXT COLLATE "C" PRIMARY KEY,
    name                 TEXT COLLATE "C" NOT NULL,
    public_key           TEXT NOT NULL UNIQUE,
    capabilities         TEXT NOT NULL,
    status               TEXT NOT NULL DEFAULT 'active'
                         CHECK (status IN ('proposed', 'active', 'suspended', 'revoked')),
    status_reason        TEXT,
    trust_score          BIGINT NOT NULL DEFAULT 500 CHECK (trust_score BETWEEN 0 AND 1000),
    parent_did           TEXT COLLATE "C" REFERENCES agents(did),
    delegation_depth     BIGINT NOT NULL DEFAULT 0 CHECK (delegation_depth >= 0),
    entra_object_id      TEXT,
    model                TEXT,
    runtime              TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    trust_positive_at    BIGINT,
    suspension_security  BIGINT NOT NULL DEFAULT 0,
    status_changed_at    BIGINT,
    status_changed_by    TEXT,
    row_no               BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE INDEX agents_by_parent ON agents(parent_did);

CREATE TABLE agent_sponsors (
    agent_did   TEXT COLLATE "C" NOT NULL REFERENCES agents(did),
    sponsor_id  TEXT COLLATE "C" NOT NULL REFERENCES sponsors(id),
    PRIMARY KEY (agent_did, sponsor_id)
);
CREATE INDEX agent_sponsors_by_sponsor ON agent_sponsors(sponsor_id);

CREATE TABLE device_authorizations (
    device_code_hash  TEXT COLLATE "C" PRIMARY KEY,
    user_code         TEXT COLLATE "C" NOT NULL UNIQUE,
    client_id         TEXT NOT NULL,
    scope             TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'redeemed')),
    sponsor_id        TEXT COLLATE "C" REFERENCES sponsors(id),
    interval_seconds  BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    last_polled_at    BIGINT
);

CREATE TABLE refresh_tokens (
    token_hash  TEXT COLLATE "C" PRIMARY KEY,
    family_id   TEXT COLLATE "C" NOT NULL,
    sponsor_id  TEXT COLLATE "C" NOT NULL REFERENCES sponsors(id),
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens(family_id);

CREATE TABLE access_tokens (
    jti           TEXT COLLATE "C" PRIMARY KEY,
    subject_kind  TEXT NOT NULL CHECK (subject_kind IN ('sponsor', 'agent')),
    subject       TEXT COLLATE "C" NOT NULL,
    client_id     TEXT NOT NULL,
    family_id     TEXT COLLATE "C",
    scope         TEXT NOT NULL,
    issued_at     BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX access_tokens_by_subject ON access_tokens(subject);
CREATE INDEX access_tokens_by_family ON access_tokens(family_id);

CREATE TABLE client_assertions (
    issuer      TEXT COLLATE "C" NOT NULL,
    jti         TEXT COLLATE "C" NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX client_assertions_by_expiry ON client_assertions(expires_at);

CREATE TABLE idempotency_keys (
    principal     TEXT COLLATE "C" NOT NULL,
    key           TEXT COLLATE "C" NOT NULL,
    request_hash  TEXT NOT NULL,
    status        BIGINT NOT NULL,
    body          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (principal, key)
);

CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT COLLATE "C" NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT COLLATE "C" NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_events_by_subject ON audit_events(subject);
CREATE INDEX audit_events_by_actor ON audit_events(actor_id);

-- Append-only: the server never rewrites history. (Someone who owns the tables can drop this;
-- the hash chain is what catches that.)
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE requests (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    kind               TEXT NOT NULL CHECK (kind IN ('elevation', 'delegation')),
    agent_did          TEXT COLLATE "C" NOT NULL REFERENCES agents(did),
    child_did          TEXT COLLATE "C" REFERENCES agents(did),
    capabilities       TEXT NOT NULL,
    duration_seconds   BIGINT NOT NULL CHECK (duration_seconds > 0),
    justification      JSON NOT NULL,
    ticket             TEXT,
    context            JSON,
    on_behalf_of       TEXT,
    status             TEXT NOT NULL
                       CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
    reason             JSON,
    requirement        TEXT NOT NULL,
    trust_score        BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    decided_at         BIGINT,
    grant_id           TEXT COLLATE "C",
    row_no             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE INDEX requests_pending_page ON requests(status, expires_at, id, agent_did);
CREATE INDEX requests_by_status_agent ON requests(status, agent_did);
CREATE INDEX requests_by_agent ON requests(agent_did, created_at);
CREATE INDEX requests_by_child ON requests(child_did);

CREATE TABLE request_decisions (
    request_id        TEXT COLLATE "C" NOT NULL REFERENCES requests(id),
    approver_id       TEXT COLLATE "C" NOT NULL REFERENCES sponsors(id),
    decision          TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    duration_seconds  BIGINT,
    capabilities      TEXT,
    justification     JSON NOT NULL,
    at                BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver_id)
);

CREATE TABLE grants (
    id               TEXT COLLATE "C" PRIMARY KEY,
    agent_did        TEXT COLLATE "C" NOT NULL REFERENCES agents(did),
    capabilities     TEXT NOT NULL,
    not_before       BIGINT NOT NULL,
    not_after        BIGINT NOT NULL,
    request_id       TEXT COLLATE "C" NOT NULL REFERENCES requests(id),
    source_grant_id  TEXT COLLATE "C" REFERENCES grants(id),
    revoked_at       BIGINT,
    revoked_by       TEXT,
    revoke_reason    TEXT,
    ended_at         BIGINT,
    row_no           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    CHECK (not_after > not_before)
);
CREATE INDEX grants_by_agent ON grants(agent_did, not_after);
CREATE INDEX grants_by_source ON grants(source_grant_id);
CREATE INDEX grants_running_out ON grants(not_after) WHERE revoked_at IS NULL AND ended_at IS NULL;

CREATE TABLE token_grants (
    grant_id  TEXT COLLATE "C" NOT NULL REFERENCES grants(id),
    jti       TEXT COLLATE "C" NOT NULL REFERENCES access_tokens(jti),
    PRIMARY KEY (grant_id, jti)
);
CREATE INDEX token_grants_by_jti ON token_grants(jti);

CREATE TABLE trust_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_did    TEXT COLLATE "C" NOT NULL REFERENCES agents(did),
    at           BIGINT NOT NULL,
    delta        BIGINT NOT NULL,
    score_after  BIGINT NOT NULL,
    reason       TEXT NOT NULL
);
CREATE INDEX trust_events_by_agent ON trust_events(agent_did, at);

CREATE TABLE device_consents (
    consent_hash  TEXT COLLATE "C" PRIMARY KEY,
    sponsor_id    TEXT COLLATE "C" NOT NULL REFERENCES sponsors(id),
    user_code     TEXT NOT NULL,
    expires_at    BIGINT NOT NULL
);

CREATE TABLE auth_failures (
    key  TEXT COLLATE "C" NOT NULL,
    at   BIGINT NOT NULL
);
CREATE INDEX auth_failures_by_key ON auth_failures(key, at);
CREATE INDEX auth_failures_by_time ON auth_failures(at);

-- The readiness probe's row: the last probe.
CREATE TABLE store_health (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    checked_at  BIGINT NOT NULL
);
