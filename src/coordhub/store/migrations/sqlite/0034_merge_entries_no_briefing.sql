-- A merge entry kept a copy of its assignment's briefing (up to 64 KiB each) that nothing read back: a fix worker
-- is briefed from its assignment's row, and the queue's queries never select the column
-- (coordhub.store.tables.merging.COLUMNS). New entries store '' there; this clears the copies already written.
-- The column stays (NOT NULL, now ''): a hub from before this migration, still running while the others are
-- upgraded, names it in its inserts, and dropping it would make those fail.
UPDATE merge_entries SET briefing = '' WHERE briefing <> '';
