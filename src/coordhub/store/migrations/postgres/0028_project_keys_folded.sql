-- Project keys compare case-insensitively and are kept in lower case (coordhub.core.projects): fold the keys
-- stored before that rule, so `GuruRMM` and `gururmm` rows are one project. Only ASCII letters are folded, as
-- the hub folds them: lower() under the "C" collation folds ASCII alone, whatever the database's locale.
UPDATE leases SET project_key = lower(project_key COLLATE "C") WHERE project_key <> lower(project_key COLLATE "C");
UPDATE messages SET project_key = lower(project_key COLLATE "C")
    WHERE project_key <> lower(project_key COLLATE "C");
UPDATE todos SET project_key = lower(project_key COLLATE "C") WHERE project_key <> lower(project_key COLLATE "C");
UPDATE workflows SET project_key = lower(project_key COLLATE "C")
    WHERE project_key <> lower(project_key COLLATE "C");
UPDATE work_items SET project_key = lower(project_key COLLATE "C")
    WHERE project_key <> lower(project_key COLLATE "C");
UPDATE events SET project_key = lower(project_key COLLATE "C") WHERE project_key <> lower(project_key COLLATE "C");
-- Live leases granted under two spellings of one project stay until they end; where they overlap, each now
-- shows as the other's conflict (reported, never missed: contract section 2.4).
-- A component is keyed by (project_key, component): of the rows that fold into one, the last updated stays (the
-- state the fleet last set, as if the rule had always held; ties: the greater spelling, so the result is fixed).
DELETE FROM components WHERE EXISTS (
    SELECT 1 FROM components AS later
    WHERE lower(later.project_key COLLATE "C") = lower(components.project_key COLLATE "C")
      AND later.component = components.component
      AND (later.updated_at > components.updated_at
           OR (later.updated_at = components.updated_at
               AND later.project_key COLLATE "C" > components.project_key COLLATE "C")));
UPDATE components SET project_key = lower(project_key COLLATE "C")
    WHERE project_key <> lower(project_key COLLATE "C");
