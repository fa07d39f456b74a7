-- What each session sent today (UTC days since the epoch) in messages: their count and bytes, one row a session
-- (a send of a new day starts the row again). An unread direct message is kept until it is read, so without
-- a bound one token could fill the hub's disk by writing to a session that never reads (review: 42 MB in
-- 1.3 s to a recipient that never existed).
CREATE TABLE message_quota (
    session_id TEXT PRIMARY KEY,
    day        INTEGER NOT NULL,
    messages   BIGINT NOT NULL,
    bytes      BIGINT NOT NULL
);
