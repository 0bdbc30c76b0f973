-- Sign-in state every server instance must share: the consents of the verification page (a
-- human signed in and not yet decided) and failed attempts that rate limits count.

CREATE TABLE device_consents (
    consent_hash  TEXT PRIMARY KEY,        -- SHA-256 hex of the secret the page carries
    sponsor_id    TEXT NOT NULL REFERENCES sponsors(id),
    user_code     TEXT NOT NULL,
    expires_at    INTEGER NOT NULL
);

CREATE TABLE auth_failures (
    key  TEXT NOT NULL,                    -- what is limited: code:<ip>, user:<name>, pass:<ip>
    at   INTEGER NOT NULL
);
CREATE INDEX auth_failures_by_key ON auth_failures(key, at);
CREATE INDEX auth_failures_by_time ON auth_failures(at);
