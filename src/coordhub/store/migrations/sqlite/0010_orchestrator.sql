-- The orchestrator (issue 11): seed 003's coordinator state on the hub. Times are epoch seconds (UTC).

-- One row (id 1): the active coordinator.yml and the fleet-wide dispatch state.
CREATE TABLE orchestrator (
    id                INTEGER PRIMARY KEY,
    config            TEXT,                    -- the active config as JSON; NULL until `coord config apply`
    config_version    INTEGER NOT NULL DEFAULT 0,
    config_applied_at REAL,
    config_applied_by TEXT,
    last_dispatch_at  REAL,                    -- for stagger_seconds (fleet-wide)
    paused_until      REAL,                    -- a rate-limit pause of dispatch, fleet-wide
    pause_reason      TEXT
);
INSERT INTO orchestrator (id) VALUES (1);
INSERT INTO counters (name, value) VALUES ('assignment', 0);

-- One row per machine whose `coord agent` ever registered; its presence is a lease on heartbeats.
CREATE TABLE hosts (
    machine        TEXT PRIMARY KEY,          -- as spelled in coordinator.yml
    session_id     TEXT NOT NULL,             -- <machine>/agent, or the admin that acted for it
    incarnation    INTEGER NOT NULL,          -- +1 per register: a restarted agent is a new incarnation
    capabilities   TEXT NOT NULL,             -- JSON array
    repos          TEXT NOT NULL,             -- JSON object name -> path on that machine
    slots          INTEGER NOT NULL,
    free_slots     INTEGER NOT NULL,
    running        TEXT NOT NULL,             -- JSON array of assignment ids, from the last heartbeat
    agent_version  TEXT,
    registered_at  REAL NOT NULL,
    last_heartbeat REAL NOT NULL,
    beats          INTEGER NOT NULL DEFAULT 0, -- heartbeats of this incarnation
    stale_since    REAL,                       -- when the reconciler handled it as stale; NULL while alive
    problems       TEXT NOT NULL DEFAULT '[]', -- JSON array: what the agent found wrong at start (a repo path ...)
    recovered      TEXT NOT NULL DEFAULT '[]'  -- JSON array: what a restarted agent found and did
);

CREATE TABLE assignments (
    id               TEXT PRIMARY KEY,        -- 8 hex characters
    seq              INTEGER NOT NULL UNIQUE, -- FIFO order (the oldest first), kept across re-queues
    state            TEXT NOT NULL,           -- queued dispatched running done failed stuck needs_input cancelled
    attempt          INTEGER NOT NULL,        -- attempts dispatched so far; the current one when live
    repo             TEXT NOT NULL,
    issue            INTEGER NOT NULL,
    title            TEXT,
    labels           TEXT NOT NULL,           -- JSON array
    machine          TEXT,                    -- the machine asked for; NULL: any capable machine
    avoid_machine    TEXT,                    -- a retry's "another machine when possible"
    ran_on           TEXT,                    -- machine of the current or last attempt
    requires         TEXT NOT NULL,           -- JSON array of capabilities
    model            TEXT NOT NULL,
    model_source     TEXT NOT NULL,           -- flag | label:<name> | default | escalation
    briefing         TEXT NOT NULL,
    files_likely     TEXT NOT NULL,           -- JSON array
    branch           TEXT NOT NULL,
    worktree         TEXT,
    claude_session   TEXT,
    resume_session   TEXT,                    -- resume-stuck: the Claude session to resume
    guidance         TEXT,
    reason           TEXT,
    cost_usd         REAL NOT NULL DEFAULT 0, -- current attempt
    total_cost_usd   REAL NOT NULL DEFAULT 0, -- every attempt
    turns            INTEGER,
    last_tool        TEXT,
    last_file        TEXT,
    progress         TEXT,
    status_line      TEXT,
    result           TEXT,                    -- JSON {is_error, subtype, terminal_reason}
    pushed           INTEGER NOT NULL DEFAULT 0,
    wip_commit       TEXT,
    worker_session   TEXT,
    lease_id         TEXT,
    fence            INTEGER,
    host_incarnation INTEGER,
    budget_usd       REAL,
    wall_clock_seconds INTEGER,
    not_before       REAL,                    -- backoff: not dispatched before this
    created_by       TEXT NOT NULL,
    created_at       REAL NOT NULL,
    queued_at        REAL NOT NULL,
    dispatched_at    REAL,
    started_at       REAL,
    ended_at         REAL,
    updated_at       REAL NOT NULL
);
CREATE INDEX assignments_queue ON assignments (seq) WHERE state = 'queued';
CREATE INDEX assignments_active ON assignments (ran_on) WHERE state IN ('dispatched', 'running');
CREATE INDEX assignments_by_update ON assignments (updated_at);
-- Two clicks or two coordinators can never queue one issue twice (the dispatch also takes its lease).
CREATE UNIQUE INDEX assignments_live_issue ON assignments (repo, issue)
    WHERE state IN ('queued', 'dispatched', 'running', 'stuck', 'needs_input');

-- One row per attempt (incarnation of an assignment): where, with what, how it ended, what it cost.
CREATE TABLE assignment_attempts (
    assignment_id    TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    machine          TEXT NOT NULL,
    host_incarnation INTEGER NOT NULL,
    model            TEXT NOT NULL,
    state            TEXT NOT NULL,           -- dispatched running done failed stuck needs_input cancelled lost
    reason           TEXT,
    cost_usd         REAL NOT NULL DEFAULT 0,
    turns            INTEGER,
    claude_session   TEXT,
    dispatched_at    REAL NOT NULL,
    started_at       REAL,
    ended_at         REAL,
    PRIMARY KEY (assignment_id, attempt)
);
CREATE INDEX attempts_by_end ON assignment_attempts (ended_at);

-- The filtered worker log relayed by hosts, in chunks as they came; `start` is the chunk's offset in
-- characters from the beginning of the log. Only the last ~1 MiB of chunks is kept per assignment.
CREATE TABLE assignment_logs (
    assignment_id TEXT NOT NULL,
    start         BIGINT NOT NULL,
    text          TEXT NOT NULL,
    created_at    REAL NOT NULL,
    PRIMARY KEY (assignment_id, start)
);
