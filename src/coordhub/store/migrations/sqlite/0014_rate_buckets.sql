-- Issue 14: per-token rate limits shared by hub processes. A SQLite hub is one process, so its limiter
-- stays in memory and this table stays empty; it exists so both backends keep one schema.
CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    at REAL NOT NULL
);
