-- Why a lease ended, when a person or a rule gave a reason: a stale takeover (seed 001's stale-lock
-- rule) records the taker in released_by and here what the holder's inactivity was.
ALTER TABLE leases ADD COLUMN release_reason TEXT;
