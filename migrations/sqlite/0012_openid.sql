-- OpenID Connect: an RSA key signs ID tokens beside the Ed25519 keys (rotated with them),
-- a device sign-in remembers when the person approved it (an ID token's auth_time), and the
-- authorization endpoint's one-time codes (PKCE S256). Timestamps are INTEGER Unix
-- milliseconds (UTC).

ALTER TABLE signing_keys ADD COLUMN alg TEXT NOT NULL DEFAULT 'EdDSA'
    CHECK (alg IN ('EdDSA', 'RS256'));

ALTER TABLE device_authorizations ADD COLUMN approved_at INTEGER;

CREATE TABLE authorization_codes (
    code_hash       TEXT PRIMARY KEY,                -- SHA-256 hex of the code
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    sponsor_id      TEXT NOT NULL REFERENCES sponsors(id),
    code_challenge  TEXT NOT NULL,                   -- PKCE, S256 only
    nonce           TEXT,
    auth_time       INTEGER NOT NULL,                -- when the password was checked
    expires_at      INTEGER NOT NULL,
    redeemed_at     INTEGER,
    family_id       TEXT                             -- the sign-in its tokens belong to
);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes(expires_at);
