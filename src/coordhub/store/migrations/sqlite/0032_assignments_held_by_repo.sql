-- A dispatch walks, for each repo the host serves, only the queued assignments it may take by their repo, their
-- backoff and their issue lease (coordhub.store.tables.orchestrator.Assignments.first_runnable): with 10,000
-- queued ones whose issue leases a person held, or of a repo the host does not serve, one dispatch read all
-- 10,000 (380,627 and 60,304 SQLite steps against 627 and 304 with 10).
-- held_until: the latest end (1e300: never) of the live-state NAME leases on the assignment's issue
-- ("issue:<repo>#<n>" in project <repo>) held by any session but the assignment's own workers; NULL: none.
-- Kept on the live assignment of the issue in the transaction that grants, renews or ends such a lease, and
-- when an assignment is queued (Assignments.refresh_held); read only to choose the index a row is in.
ALTER TABLE assignments ADD COLUMN held_until REAL;
UPDATE assignments SET held_until = (
    SELECT MAX(COALESCE(l.expires_at, 1e300)) FROM leases l
    WHERE l.project_key = assignments.repo AND l.state = 'active' AND l.kind = 'name'
      AND l.scope = 'issue:' || assignments.repo || '#' || assignments.issue
      AND l.session_id NOT LIKE '%/worker-' || assignments.id)
WHERE state IN ('queued', 'dispatched', 'running', 'stuck', 'needs_input');
DROP INDEX assignments_queue_ready;
DROP INDEX assignments_queue_by_backoff;
-- no backoff, no issue lease: by queue order
CREATE INDEX assignments_ready_by_repo ON assignments (repo, seq)
    WHERE state = 'queued' AND not_before IS NULL AND held_until IS NULL;
-- in or past a backoff, no issue lease: by the backoff's end
CREATE INDEX assignments_backoff_by_repo ON assignments (repo, not_before)
    WHERE state = 'queued' AND not_before IS NOT NULL AND held_until IS NULL;
-- an issue lease held: by its end (those past it were never recorded as expired)
CREATE INDEX assignments_held_by_repo ON assignments (repo, held_until)
    WHERE state = 'queued' AND held_until IS NOT NULL;
-- an issue lease held and in a backoff: by the backoff's end (the wake time counts them, as it always did)
CREATE INDEX assignments_held_backoff_by_repo ON assignments (repo, not_before)
    WHERE state = 'queued' AND held_until IS NOT NULL AND not_before IS NOT NULL;
