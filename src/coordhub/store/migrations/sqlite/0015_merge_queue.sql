-- The merge queue and the GitHub audit trail (issue 12 points 5 and 6). Times are epoch seconds (UTC).

-- One row per time an assignment's branch entered the queue of (repo, target). `seq` is the FIFO position,
-- kept across retries and fix rounds (the oldest first: no starvation); `coord merge --order` rewrites it.
CREATE TABLE merge_entries (
    id               TEXT PRIMARY KEY,        -- 8 hex characters
    seq              INTEGER NOT NULL UNIQUE,
    assignment_id    TEXT NOT NULL,
    repo             TEXT NOT NULL,
    target           TEXT NOT NULL,           -- the branch merged into (the repo's default_branch)
    branch           TEXT NOT NULL,
    issue            INTEGER NOT NULL,
    title            TEXT,
    method           TEXT NOT NULL,           -- rebase | squash | merge
    state            TEXT NOT NULL,           -- queued running merged fixing needs_input cancelled
    attempt          INTEGER NOT NULL DEFAULT 0,  -- runs started; a report names its run's batch
    machine          TEXT,                    -- the host running (or that last ran) it
    host_incarnation INTEGER,
    batch_id         TEXT,                    -- the run: one id for every entry tested together
    batch_cap        INTEGER,                 -- bisection: the largest batch this entry may join next
    tip              TEXT,                    -- write-ahead: the commit about to land, recorded before the push
    merged_sha       TEXT,
    pr_number        INTEGER,
    pr_url           TEXT,
    conflict_fixes   INTEGER NOT NULL DEFAULT 0,
    red_fixes        INTEGER NOT NULL DEFAULT 0,
    fix_attempt      INTEGER,                 -- the assignment's attempt when a fix worker was queued
    briefing         TEXT NOT NULL,           -- the assignment's briefing when it entered (fix workers quote it)
    reason           TEXT,
    evidence         TEXT,                    -- JSON: {command, exit_code, output, checks, files}
    created_by       TEXT NOT NULL,
    created_at       REAL NOT NULL,
    started_at       REAL,
    ended_at         REAL,
    updated_at       REAL NOT NULL
);
CREATE INDEX merge_entries_queue ON merge_entries (repo, target, seq) WHERE state IN ('queued', 'running');
CREATE INDEX merge_entries_by_assignment ON merge_entries (assignment_id);
-- One live entry per assignment: entering twice returns the entry it has.
CREATE UNIQUE INDEX merge_entries_live ON merge_entries (assignment_id)
    WHERE state IN ('queued', 'running', 'fixing', 'needs_input');
INSERT INTO counters (name, value) VALUES ('merge_entry', 0);

-- The GitHub audit trail: one row per comment the hub means to post, keyed by (assignment, attempt, event),
-- so a retried post never duplicates (the comment carries the key as a marker, checked before posting).
CREATE TABLE github_posts (
    key           TEXT PRIMARY KEY,           -- <assignment>:<attempt>:<event>
    assignment_id TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    event         TEXT NOT NULL,              -- briefing completion failure stuck review merged pr closed
    repo          TEXT NOT NULL,
    github        TEXT NOT NULL,              -- owner/name
    issue         INTEGER NOT NULL,
    kind          TEXT NOT NULL,              -- comment | pr | close
    body          TEXT NOT NULL,
    state         TEXT NOT NULL,              -- pending running posted failed
    machine       TEXT,                       -- the host posting it now
    url           TEXT,
    tries         INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    REAL NOT NULL,
    posted_at     REAL,
    updated_at    REAL NOT NULL
);
CREATE INDEX github_posts_pending ON github_posts (created_at) WHERE state IN ('pending', 'running');

-- One row (id 1): how far the audit trail has read the event log (the posts above are made from events).
CREATE TABLE github_trail (
    id           INTEGER PRIMARY KEY,
    event_cursor BIGINT NOT NULL DEFAULT 0
);
INSERT INTO github_trail (id) VALUES (1);
