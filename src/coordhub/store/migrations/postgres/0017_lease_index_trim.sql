-- Every write to a live lease (a claim, a release, an expiry) kept one index more than any read needs:
-- leases_active_by_scope (project_key, scope), from 0006, leads with project_key under the same
-- condition, so every read by project alone is a prefix of it. Dropping the older index saves a
-- b-tree insert or delete, and the page it dirties, on every such write (issue 15).
DROP INDEX IF EXISTS leases_active_by_project;
