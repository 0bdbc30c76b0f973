-- Forgetting a client's expired assertions is a range over (issuer, expires_at), not a scan of
-- every assertion the client has made in the last five minutes.
CREATE INDEX client_assertions_by_expiry ON client_assertions(issuer, expires_at);
