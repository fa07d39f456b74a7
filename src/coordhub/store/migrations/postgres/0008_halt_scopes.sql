-- Halts by scope and the pause after a resume (issue 9 point 8; seed 004's asymmetry).

-- halts.scope (from 0001) now holds '*' (the fleet), 'machine:<m>' or 'project:<p>', names in
-- lower case. by_admin: whether an admin token set the halt; a session may lift a halt of its
-- own machine only when no admin set it (every halt before this migration was an admin's).
ALTER TABLE halts ADD COLUMN by_admin INTEGER NOT NULL DEFAULT 1;

-- A session that was active under a halt is paused when the halt is lifted, until it
-- re-engages (POST /engage) or the operator resumes with engage_all. paused_scope is the
-- scope of the halt whose lifting paused it.
ALTER TABLE sessions ADD COLUMN paused_at DOUBLE PRECISION;
ALTER TABLE sessions ADD COLUMN paused_scope TEXT;
CREATE INDEX sessions_paused ON sessions (paused_at) WHERE paused_at IS NOT NULL;
