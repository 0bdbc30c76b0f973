-- Resource servers registered as confidential OAuth clients (`governance-server clients add`),
-- allowed to introspect tokens. A secret is kept only as its SHA-256 (it is 256 random bits);
-- a private_key_jwt client keeps its Ed25519 public key instead. Timestamps are INTEGER Unix
-- milliseconds (UTC).

CREATE TABLE resource_clients (
    client_id      TEXT PRIMARY KEY,                 -- rs_ and 32 hex digits
    name           TEXT NOT NULL UNIQUE,
    auth_method    TEXT NOT NULL CHECK (auth_method IN ('client_secret_basic', 'private_key_jwt')),
    secret_sha256  TEXT,                             -- client_secret_basic
    public_key     TEXT,                             -- private_key_jwt: Ed25519, base64url
    created_at     INTEGER NOT NULL,
    removed_at     INTEGER,
    CHECK ((auth_method = 'client_secret_basic') = (secret_sha256 IS NOT NULL)),
    CHECK ((auth_method = 'private_key_jwt') = (public_key IS NOT NULL))
);
