-- The commit a merge entry's gates (its automated test and review runs) passed on, fixed when a run starts: the
-- host merges exactly that commit, or refuses the entry when the branch no longer points at it (anything pushed
-- after the gates would otherwise land unseen). NULL: no gate named a commit (a person's verdict, no gates).
ALTER TABLE merge_entries ADD COLUMN gated_sha TEXT;
