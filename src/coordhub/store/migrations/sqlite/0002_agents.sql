-- coordhub schema, version 2 (SQLite): presence with incarnations, per-recipient
-- deliveries with ack deadlines, event targets.

ALTER TABLE sessions ADD COLUMN incarnation INTEGER NOT NULL DEFAULT 0;  -- 0: never registered
ALTER TABLE sessions ADD COLUMN registered_at REAL;
ALTER TABLE sessions ADD COLUMN last_heartbeat REAL;
ALTER TABLE sessions ADD COLUMN deregistered_at REAL;
ALTER TABLE sessions ADD COLUMN client TEXT;              -- e.g. claude-code, codex, cli
ALTER TABLE sessions ADD COLUMN client_session TEXT;      -- the agent's own id (Claude's session_id)
ALTER TABLE sessions ADD COLUMN cwd TEXT;
ALTER TABLE sessions ADD COLUMN broadcast_shown_cursor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN notify_cursor INTEGER NOT NULL DEFAULT 0;

ALTER TABLE messages ADD COLUMN to_incarnation INTEGER;   -- the recipient incarnation it was sent to
ALTER TABLE messages ADD COLUMN ack_wait_seconds REAL;
ALTER TABLE messages ADD COLUMN max_deliveries INTEGER;
ALTER TABLE messages ADD COLUMN escalate_to TEXT;

ALTER TABLE receipts ADD COLUMN delivered_at REAL;        -- last time it was shown to the agent
ALTER TABLE receipts ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 1;  -- delivery attempts (1 + redeliveries)
ALTER TABLE receipts ADD COLUMN ack_deadline REAL;        -- redelivery is due at this time
ALTER TABLE receipts ADD COLUMN dead_at REAL;             -- dead-lettered after max deliveries

CREATE INDEX receipts_unshown ON receipts (session_id, message_seq) WHERE delivered_at IS NULL AND read_at IS NULL;
CREATE INDEX receipts_ack_due ON receipts (ack_deadline) WHERE ack_deadline IS NOT NULL AND acked_at IS NULL AND dead_at IS NULL;

ALTER TABLE events ADD COLUMN target TEXT;                -- the session it is for, '*' for all, NULL: public
CREATE INDEX events_by_target ON events (target, id) WHERE target IS NOT NULL;
