-- The live assignments of one session, counted at every assign against the bound of a session
-- (coordhub.core.assignments.MAX_LIVE_PER_SESSION) without reading their rows (review: one token queued
-- thousands of 64 KiB briefings and every later assign and status read grew with them).
CREATE INDEX assignments_live_by_creator ON assignments (created_by)
    WHERE state IN ('queued', 'dispatched', 'running');
