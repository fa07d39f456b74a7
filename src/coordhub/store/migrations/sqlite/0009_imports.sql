-- Imports from other coordination systems (issue 10: seed 002's Redis data).

-- The id a message had in the system it was imported from (seed 002's msg-1a2b3c4d); NULL for
-- messages sent on the hub. Its hub id is derived from it (core/seed002.py), so importing again
-- finds the row instead of adding another.
ALTER TABLE messages ADD COLUMN origin_id TEXT;

-- What an importer wrote that has no natural key of its own (a notification queued for an
-- offline instance), by a key the importer derives from the source, so a second import of the
-- same data, or one resumed after a crash, writes nothing twice.
CREATE TABLE imported (
    key         TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,        -- notification
    ref         TEXT,                 -- what it became on the hub (an event id)
    imported_at REAL NOT NULL
);
