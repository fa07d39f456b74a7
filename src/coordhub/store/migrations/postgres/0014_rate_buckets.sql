-- Issue 14: per-token rate limits shared by every hub process on this database.
-- One token bucket per key (a token's hash); hubs charge what they let through a few times a second.
-- UNLOGGED: rate budgets are worth nothing after a crash, and skipping the WAL keeps the upserts cheap.
CREATE UNLOGGED TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
