-- Identity layer of the governance server: signing keys, sponsors, agents, OAuth state and the
-- audit chain. Timestamps are INTEGER Unix milliseconds (UTC).

CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    private_pkcs8  BLOB NOT NULL,
    public_key     TEXT NOT NULL,          -- base64url Ed25519 public key (JWK "x")
    created_at     INTEGER NOT NULL,
    retired_at     INTEGER,                -- stopped signing at
    publish_until  INTEGER                 -- stays in the JWKS until then (its tokens' expiry)
);

CREATE TABLE sponsors (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    roles          TEXT NOT NULL,          -- JSON array of role names
    password_hash  TEXT NOT NULL,          -- argon2id PHC string
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    source         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE agents (
    did              TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    public_key       TEXT NOT NULL UNIQUE,
    capabilities     TEXT NOT NULL,        -- JSON array of capability strings
    status           TEXT NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'suspended', 'revoked')),
    status_reason    TEXT,
    trust_score      INTEGER NOT NULL DEFAULT 500 CHECK (trust_score BETWEEN 0 AND 1000),
    parent_did       TEXT REFERENCES agents(did),
    delegation_depth INTEGER NOT NULL DEFAULT 0 CHECK (delegation_depth >= 0),
    entra_object_id  TEXT,
    model            TEXT,
    runtime          TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX agents_by_parent ON agents(parent_did);

CREATE TABLE agent_sponsors (
    agent_did   TEXT NOT NULL REFERENCES agents(did),
    sponsor_id  TEXT NOT NULL REFERENCES sponsors(id),
    PRIMARY KEY (agent_did, sponsor_id)
);
CREATE INDEX agent_sponsors_by_sponsor ON agent_sponsors(sponsor_id);

CREATE TABLE device_authorizations (
    device_code_hash  TEXT PRIMARY KEY,    -- SHA-256 hex of the device code
    user_code         TEXT NOT NULL UNIQUE,
    client_id         TEXT NOT NULL,
    scope             TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'redeemed')),
    sponsor_id        TEXT REFERENCES sponsors(id),
    interval_seconds  INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    last_polled_at    INTEGER
);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,          -- SHA-256 hex of the opaque token
    family_id   TEXT NOT NULL,
    sponsor_id  TEXT NOT NULL REFERENCES sponsors(id),
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,                   -- rotated: a second use is reuse
    revoked_at  INTEGER
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens(family_id);

-- Every access token issued, so introspection and revocation answer with one primary-key lookup.
CREATE TABLE access_tokens (
    jti           TEXT PRIMARY KEY,
    subject_kind  TEXT NOT NULL CHECK (subject_kind IN ('sponsor', 'agent')),
    subject       TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    family_id     TEXT,
    scope         TEXT NOT NULL,
    issued_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX access_tokens_by_subject ON access_tokens(subject);
CREATE INDEX access_tokens_by_family ON access_tokens(family_id);

-- Client-assertion `jti`s already seen, kept until the assertion would have expired.
CREATE TABLE client_assertions (
    issuer      TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);

CREATE TABLE idempotency_keys (
    principal     TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        INTEGER NOT NULL,
    body          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
);

CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    details     TEXT NOT NULL,             -- JSON object
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_events_by_subject ON audit_events(subject);
CREATE INDEX audit_events_by_actor ON audit_events(actor_id);

-- Append-only: the server never rewrites history. (Someone with the file can drop these; the
-- hash chain is what catches that.)
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
