-- Expired client assertions are forgotten by the sweeper, for every client at once, instead of
-- by each token request for its own client: a range over expires_at.
DROP INDEX client_assertions_by_expiry;
CREATE INDEX client_assertions_by_expiry ON client_assertions(expires_at);
