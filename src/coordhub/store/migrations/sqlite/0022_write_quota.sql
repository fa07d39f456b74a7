-- What each session wrote per UTC day (days since the epoch) into records retention never prunes (todos,
-- workflows, work items, component states): the per-session storage quota (review: one token could fill the
-- disk at ~46 MB/s within its rate limit).
CREATE TABLE write_quota (
    session_id TEXT NOT NULL,
    day        INTEGER NOT NULL,
    writes     INTEGER NOT NULL DEFAULT 0,
    bytes      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, day)
);
