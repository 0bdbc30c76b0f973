-- The pending list reads its page and its count from indexes. The page walks
-- (status, expires_at, id) in the order it is listed in, with agent_did beside it for the
-- sponsor filter, so it stops after a page instead of sorting every pending request; the count
-- is a covering range per sponsored agent instead of a table lookup per pending request.
-- The new page index starts with the old requests_pending, which the expiry sweep now uses.
DROP INDEX requests_pending;
CREATE INDEX requests_pending_page ON requests(status, expires_at, id, agent_did);
CREATE INDEX requests_by_status_agent ON requests(status, agent_did);
