-- A dispatch looks for the oldest queued assignment a host may run now in two walks
-- (coordhub.store.tables.orchestrator.Assignments.first_runnable): those with no backoff, oldest first, and
-- those whose backoff has ended, by its end. So a queued assignment still waiting out its backoff is never
-- read by a dispatch, nor by the look for when to wake (the first end after now): with 10,000 of them one
-- dispatch walked all 10,000 on the writer's path (review).
CREATE INDEX assignments_queue_ready ON assignments (seq) WHERE state = 'queued' AND not_before IS NULL;
CREATE INDEX assignments_queue_by_backoff ON assignments (not_before) WHERE state = 'queued' AND not_before IS NOT NULL;
