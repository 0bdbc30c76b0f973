-- OpenID Connect: the RSA key that signs ID tokens, a device sign-in's approval time, and
-- the authorization endpoint's one-time codes; the same as SQLite's 0012.

ALTER TABLE signing_keys ADD COLUMN alg TEXT NOT NULL DEFAULT 'EdDSA'
    CHECK (alg IN ('EdDSA', 'RS256'));

ALTER TABLE device_authorizations ADD COLUMN approved_at BIGINT;

CREATE TABLE authorization_codes (
    code_hash       TEXT COLLATE "C" PRIMARY KEY,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    sponsor_id      TEXT COLLATE "C" NOT NULL REFERENCES sponsors(id),
    code_challenge  TEXT NOT NULL,
    nonce           TEXT,
    auth_time       BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    redeemed_at     BIGINT,
    family_id       TEXT
);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes(expires_at);
