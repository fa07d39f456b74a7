-- coordhub schema, client fixes (SQLite): the hub's own id, and when a queued write was first made.

-- One row per fact about the hub itself. 'hub_id' is generated here, once per
-- database, so every hub process serving the same database reports the same
-- id (issue 7 point 2: a locally found admin token is sent only to its hub).
CREATE TABLE hub_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO hub_meta (key, value) VALUES ('hub_id', lower(hex(randomblob(16))));

-- When the client first tried a write that it then replayed from its softfail
-- queue (seed 001); NULL for writes that reached the hub at once.
ALTER TABLE messages ADD COLUMN queued_at REAL;
ALTER TABLE todos ADD COLUMN queued_at REAL;
