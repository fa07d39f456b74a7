-- coordhub schema, version 1 (PostgreSQL). Times are seconds since the Unix epoch (UTC).
-- Booleans are 0/1 integers so the same SQL runs on both backends.

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('fence', 0);

CREATE TABLE sessions (
    session_id       TEXT PRIMARY KEY,
    first_seen       DOUBLE PRECISION NOT NULL,
    last_seen        DOUBLE PRECISION NOT NULL,
    broadcast_cursor BIGINT NOT NULL DEFAULT 0  -- every broadcast with seq <= this is read
);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,               -- the session id the token acts as
    token_hash TEXT NOT NULL UNIQUE,        -- sha256 hex; the token itself is never stored
    is_admin   INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
CREATE INDEX tokens_by_name ON tokens (name);

CREATE TABLE leases (
    id          TEXT PRIMARY KEY,
    fence       BIGINT NOT NULL UNIQUE,
    project_key TEXT NOT NULL,
    resource    TEXT NOT NULL,
    kind        TEXT NOT NULL,              -- path | glob | name
    session_id  TEXT NOT NULL,
    description TEXT,
    ttl_hours   DOUBLE PRECISION NOT NULL,
    acquired_at DOUBLE PRECISION NOT NULL,
    renewed_at  DOUBLE PRECISION,
    expires_at  DOUBLE PRECISION,                       -- NULL: never expires (ttl_hours = 0)
    state       TEXT NOT NULL,              -- active | released | expired | revoked
    released_at DOUBLE PRECISION,
    released_by TEXT,
    updated_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX leases_active_by_project ON leases (project_key) WHERE state = 'active';
CREATE INDEX leases_active_by_session ON leases (session_id) WHERE state = 'active';
CREATE INDEX leases_active_by_expiry ON leases (expires_at) WHERE state = 'active';

CREATE TABLE messages (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    from_session TEXT NOT NULL,
    to_session   TEXT,                      -- NULL: broadcast to the whole fleet
    project_key  TEXT,
    subject      TEXT NOT NULL,
    body         TEXT NOT NULL,
    thread_id    TEXT,
    reply_to     TEXT,
    importance   TEXT NOT NULL,
    message_type TEXT,
    requires_ack INTEGER NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL
);
CREATE INDEX messages_broadcasts ON messages (seq) WHERE to_session IS NULL;
CREATE INDEX messages_by_thread ON messages (thread_id, seq) WHERE thread_id IS NOT NULL;

-- Per-recipient state. Direct messages get their row when sent; a broadcast
-- gets a row for a session only once that session reads or acks it.
CREATE TABLE receipts (
    session_id  TEXT NOT NULL,
    message_seq BIGINT NOT NULL REFERENCES messages (seq),
    read_at     DOUBLE PRECISION,
    acked_at    DOUBLE PRECISION,
    PRIMARY KEY (session_id, message_seq)
);
CREATE INDEX receipts_unread ON receipts (session_id, message_seq) WHERE read_at IS NULL;

CREATE TABLE todos (
    id                 TEXT PRIMARY KEY,
    text               TEXT NOT NULL,
    user_name          TEXT,
    project_key        TEXT,
    parent_id          TEXT,
    source             TEXT,
    auto               INTEGER NOT NULL,
    status             TEXT NOT NULL,       -- pending | done
    created_by         TEXT NOT NULL,
    created_by_user    TEXT,
    created_by_machine TEXT,
    completed_by       TEXT,
    created_at         DOUBLE PRECISION NOT NULL,
    updated_at         DOUBLE PRECISION NOT NULL,
    completed_at       DOUBLE PRECISION
);
CREATE INDEX todos_by_status ON todos (status, created_at);

CREATE TABLE workflows (
    id          TEXT PRIMARY KEY,
    project_key TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    status      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX workflows_by_project ON workflows (project_key);

CREATE TABLE work_items (
    id           TEXT PRIMARY KEY,
    workflow_id  TEXT NOT NULL REFERENCES workflows (id),
    project_key  TEXT NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT,
    status       TEXT NOT NULL,
    priority     INTEGER NOT NULL,
    assigned_to  TEXT,
    created_by   TEXT NOT NULL,
    updated_by   TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL
);
CREATE INDEX work_items_by_workflow ON work_items (workflow_id);

CREATE TABLE components (
    project_key TEXT NOT NULL,
    component   TEXT NOT NULL,
    state       TEXT NOT NULL,
    version     TEXT,
    notes       TEXT,
    updated_by  TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (project_key, component)
);

CREATE TABLE halts (
    scope      TEXT PRIMARY KEY,            -- '*' is the whole fleet
    halted_by  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    halted_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL,
    session_id  TEXT,
    project_key TEXT,
    subject_id  TEXT,
    payload     TEXT NOT NULL,              -- JSON object
    created_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE idempotency (
    scope        TEXT NOT NULL,             -- the acting session
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,             -- the first response, JSON
    created_at   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created_at);
