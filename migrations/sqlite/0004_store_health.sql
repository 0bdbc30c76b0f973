-- The readiness probe's rows: row 1 records the last probe; row 2 briefly holds room for a few
-- pages, so a probe fails the way a write would when the database cannot grow.
CREATE TABLE store_health (
    id          INTEGER PRIMARY KEY CHECK (id IN (1, 2)),
    checked_at  INTEGER NOT NULL,
    room        BLOB
);
