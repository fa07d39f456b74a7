-- The lists of assignments (GET /api/coord/orchestrator/assignments, coord status, the session summary) give a briefing's size in
-- UTF-8 bytes, not its text; they read every listed row's briefing (up to 64 KiB each) to count it. The size is
-- now kept beside the text when an assignment is made (a briefing never changes), and the lists select every
-- column but the briefing (coordhub.store.tables.orchestrator.LISTED).
ALTER TABLE assignments ADD COLUMN briefing_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE assignments SET briefing_bytes = OCTET_LENGTH(briefing);
