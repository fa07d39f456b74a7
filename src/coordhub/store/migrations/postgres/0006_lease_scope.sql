-- The live-lease overlap index (issue 8): each lease is filed under its scope, the longest
-- literal segment prefix of its normalized resource, so a claim reads only the leases filed
-- at its own scope's ancestors, beneath it, or at the root. Rows from before this migration
-- have a NULL scope: they are always candidates until a claim files them. COLLATE "C": range
-- scans over "scope/" .. "scope0" need byte order, not the locale's.
ALTER TABLE leases ADD COLUMN scope TEXT COLLATE "C";
-- 1 when the lease shows its scope is a directory (it is a glob, a directory, or has several
-- alternatives), 0 for a plain file.
ALTER TABLE leases ADD COLUMN scope_is_dir INTEGER;
CREATE INDEX leases_active_by_scope ON leases (project_key, scope) WHERE state = 'active';
