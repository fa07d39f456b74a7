-- The pipeline (issue 12 points 1-4): each assignment's stage after its work, and one row per stage run.
-- Times are epoch seconds (UTC).

ALTER TABLE assignments ADD COLUMN stage TEXT NOT NULL DEFAULT 'work'; -- work test review approval fix merge merged passed needs_input
ALTER TABLE assignments ADD COLUMN stage_at REAL;                      -- when it entered its stage (the merge queue's FIFO order)
ALTER TABLE assignments ADD COLUMN stage_reason TEXT;
ALTER TABLE assignments ADD COLUMN fix_round INTEGER NOT NULL DEFAULT 0; -- fix workers dispatched so far
ALTER TABLE assignments ADD COLUMN fix_stage TEXT;                     -- the stage that runs again after the fix
ALTER TABLE assignments ADD COLUMN changed_files TEXT;                 -- JSON array the host reported at `done`
CREATE INDEX assignments_by_stage ON assignments (stage, stage_at);
-- work that finished before the pipeline existed is not pushed through it now
UPDATE assignments SET stage = 'passed' WHERE state = 'done';

ALTER TABLE orchestrator ADD COLUMN session_since REAL;       -- the last `coord done`: what the next summary covers
ALTER TABLE orchestrator ADD COLUMN round_completed_at REAL;  -- the last time the queue drained (on_round_complete)

CREATE TABLE stage_runs (
    id               TEXT PRIMARY KEY,          -- 8 hex characters
    seq              BIGINT NOT NULL UNIQUE,    -- creation order (strictly increasing, from `counters`)
    assignment_id    TEXT NOT NULL,
    stage            TEXT NOT NULL,             -- test | review
    round            INTEGER NOT NULL,          -- the assignment's fix_round when it was queued
    state            TEXT NOT NULL,             -- queued dispatched running passed failed error cancelled
    verdict          TEXT,                      -- test: passed | failed; review: approve | request_changes
    manual           INTEGER NOT NULL DEFAULT 0, -- a verdict a human recorded (`coord test --passed`)
    attempt          INTEGER NOT NULL DEFAULT 0, -- dispatches of this run (a lost host's run is dispatched again)
    machine          TEXT,                      -- where the current or last attempt runs
    host_incarnation INTEGER,
    requires         TEXT NOT NULL DEFAULT '[]', -- JSON array of capabilities (smoke_tests.capability_rules)
    avoid_machine    TEXT,                      -- reviews: the worker's machine, used only when no other can
    branch           TEXT NOT NULL,
    base             TEXT NOT NULL,             -- the branch it is compared with (the repo's default branch)
    commit_sha       TEXT,                      -- the tip it ran on
    model            TEXT,
    command          TEXT,
    exit_code        INTEGER,
    output_tail      TEXT,
    findings         TEXT,                      -- JSON array of {file, line, severity, message}
    summary          TEXT,
    reason           TEXT,
    cost_usd         REAL NOT NULL DEFAULT 0,
    timeout_seconds  INTEGER,
    created_by       TEXT,
    created_at       REAL NOT NULL,
    dispatched_at    REAL,
    started_at       REAL,
    ended_at         REAL
);
CREATE INDEX stage_runs_by_assignment ON stage_runs (assignment_id, seq);
INSERT INTO counters (name, value) VALUES ('stage_run', 0);
CREATE INDEX stage_runs_live ON stage_runs (seq) WHERE state IN ('queued', 'dispatched', 'running');
-- one live run per assignment: a stage never runs twice at once
CREATE UNIQUE INDEX stage_runs_one_live ON stage_runs (assignment_id) WHERE state IN ('queued', 'dispatched', 'running');
