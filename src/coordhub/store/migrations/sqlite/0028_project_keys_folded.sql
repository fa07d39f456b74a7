-- Project keys compare case-insensitively and are kept in lower case (coordhub.core.projects): fold the keys
-- stored before that rule, so `GuruRMM` and `gururmm` rows are one project. Only ASCII letters are folded, as
-- the hub folds them: SQLite's lower() folds ASCII alone.
UPDATE leases SET project_key = lower(project_key) WHERE project_key <> lower(project_key);
UPDATE messages SET project_key = lower(project_key) WHERE project_key <> lower(project_key);
UPDATE todos SET project_key = lower(project_key) WHERE project_key <> lower(project_key);
UPDATE workflows SET project_key = lower(project_key) WHERE project_key <> lower(project_key);
UPDATE work_items SET project_key = lower(project_key) WHERE project_key <> lower(project_key);
UPDATE events SET project_key = lower(project_key) WHERE project_key <> lower(project_key);
-- Live leases granted under two spellings of one project stay until they end; where they overlap, each now
-- shows as the other's conflict (reported, never missed: contract section 2.4).
-- A component is keyed by (project_key, component): of the rows that fold into one, the last updated stays (the
-- state the fleet last set, as if the rule had always held; ties: the greater spelling, so the result is fixed).
DELETE FROM components WHERE EXISTS (
    SELECT 1 FROM components AS later
    WHERE lower(later.project_key) = lower(components.project_key) AND later.component = components.component
      AND (later.updated_at > components.updated_at
           OR (later.updated_at = components.updated_at AND later.project_key > components.project_key)));
UPDATE components SET project_key = lower(project_key) WHERE project_key <> lower(project_key);
