-- The planning brain (issue 12 point 7): proposals from `coord plan`, approved into assignments or carried out
-- as splits. Times are epoch seconds (UTC).

-- One row per proposal. `kind` assign: an issue for a machine and model (approved through the same path as
-- `coord assign`); split: sub-issues to create under a parent issue (its body is never rewritten).
-- States: pending -> approved (assign) | split (split, its sub-issues all created) | superseded (a newer plan
-- proposed the same issue again) | rejected.
CREATE TABLE proposals (
    id             BIGINT PRIMARY KEY,        -- from counters.proposal: short, for `coord approve 3,4`
    plan_id        TEXT NOT NULL,             -- one id per `coord plan` run
    kind           TEXT NOT NULL,             -- assign | split
    state          TEXT NOT NULL,
    repo           TEXT NOT NULL,
    issue          INTEGER NOT NULL,
    title          TEXT,
    labels         TEXT NOT NULL,             -- JSON list: the issue's labels when planned
    machine        TEXT,                      -- assign: NULL = any capable machine
    model          TEXT,                      -- assign: the model the brain proposed (NULL: the config decides)
    briefing       TEXT NOT NULL,
    files_likely   TEXT NOT NULL,             -- JSON list
    rationale      TEXT NOT NULL,             -- why, in the brain's words (shown, never acted on)
    children       TEXT NOT NULL,             -- split: JSON [{title, body, labels}]
    created        TEXT NOT NULL,             -- split: JSON {"<index>": {number, url}}: sub-issues made so far
    assignment_id  TEXT,                      -- assign, once approved: the assignment it queued
    created_by     TEXT NOT NULL,
    created_at     DOUBLE PRECISION NOT NULL,
    decided_by     TEXT,
    decided_at     DOUBLE PRECISION,
    updated_at     DOUBLE PRECISION NOT NULL
);
CREATE INDEX proposals_by_state ON proposals (state, id);
CREATE INDEX proposals_by_issue ON proposals (repo, issue);
INSERT INTO counters (name, value) VALUES ('proposal', 0);

-- Freshness per assignment (`coord approve --auto-pull | --skip-freshness`): NULL follows workers.auto_pull;
-- and what the host found when it checked the dependency repos on the target machine (JSON list of notes).
ALTER TABLE assignments ADD COLUMN freshness TEXT;
ALTER TABLE assignments ADD COLUMN freshness_notes TEXT;
