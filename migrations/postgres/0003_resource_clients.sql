-- Resource servers registered as confidential OAuth clients; the same table as SQLite's 0011.

CREATE TABLE resource_clients (
    client_id      TEXT COLLATE "C" PRIMARY KEY,
    name           TEXT COLLATE "C" NOT NULL UNIQUE,
    auth_method    TEXT NOT NULL CHECK (auth_method IN ('client_secret_basic', 'private_key_jwt')),
    secret_sha256  TEXT,
    public_key     TEXT,
    created_at     BIGINT NOT NULL,
    removed_at     BIGINT,
    CHECK ((auth_method = 'client_secret_basic') = (secret_sha256 IS NOT NULL)),
    CHECK ((auth_method = 'private_key_jwt') = (public_key IS NOT NULL))
);
