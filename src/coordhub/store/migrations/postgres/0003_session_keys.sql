-- coordhub schema 0003 (PostgreSQL): one session under any spelling (issue 7, point 3).
-- session_key is the case-folded id (unique); session_id keeps the first spelling seen;
-- known_since is when the hub first saw the session itself (a token, or it acted), NULL for a
-- session that has only been addressed. Older hubs compared ids exactly, so the same session
-- may appear under several spellings: every reference is rewritten to the first spelling seen
-- (earliest first_seen, then the smallest id), and duplicate rows are merged.

ALTER TABLE sessions ADD COLUMN session_key TEXT;
ALTER TABLE sessions ADD COLUMN known_since DOUBLE PRECISION;
UPDATE sessions SET known_since = first_seen;

-- spellings the old schema knew only from tokens (known) and messages (addressed)
INSERT INTO sessions (session_id, first_seen, last_seen, known_since)
SELECT name, MIN(created_at), MIN(created_at), MIN(created_at) FROM tokens
WHERE name NOT IN (SELECT session_id FROM sessions) GROUP BY name;
INSERT INTO sessions (session_id, first_seen, last_seen)
SELECT to_session, MIN(created_at), MIN(created_at) FROM messages
WHERE to_session IS NOT NULL AND to_session NOT IN (SELECT session_id FROM sessions) GROUP BY to_session;
UPDATE sessions SET session_key = lower(session_id);

CREATE TABLE session_spellings AS
SELECT s.session_id AS spelling,
       (SELECT c.session_id FROM sessions c WHERE c.session_key = s.session_key
        ORDER BY c.first_seen, c.session_id LIMIT 1) AS canonical
FROM sessions s;
DELETE FROM session_spellings WHERE spelling = canonical;

UPDATE sessions SET known_since = (SELECT MIN(o.known_since) FROM sessions o WHERE o.session_key = sessions.session_key),
                    first_seen = (SELECT MIN(o.first_seen) FROM sessions o WHERE o.session_key = sessions.session_key),
                    last_seen = (SELECT MAX(o.last_seen) FROM sessions o WHERE o.session_key = sessions.session_key);
DELETE FROM sessions WHERE session_id IN (SELECT spelling FROM session_spellings);

-- per-recipient rows keyed by session: keep one per (session, message), the canonical one if any
DELETE FROM receipts WHERE session_id IN (SELECT spelling FROM session_spellings) AND EXISTS (
    SELECT 1 FROM receipts r2 WHERE lower(r2.session_id) = lower(receipts.session_id)
    AND r2.message_seq = receipts.message_seq AND r2.session_id <> receipts.session_id
    AND (r2.session_id NOT IN (SELECT spelling FROM session_spellings) OR r2.session_id < receipts.session_id));
DELETE FROM idempotency WHERE scope IN (SELECT spelling FROM session_spellings) AND EXISTS (
    SELECT 1 FROM idempotency i2 WHERE lower(i2.scope) = lower(idempotency.scope)
    AND i2.key = idempotency.key AND i2.scope <> idempotency.scope
    AND (i2.scope NOT IN (SELECT spelling FROM session_spellings) OR i2.scope < idempotency.scope));

UPDATE receipts SET session_id = (SELECT canonical FROM session_spellings WHERE spelling = session_id)
WHERE session_id IN (SELECT spelling FROM session_spellings);
UPDATE idempotency SET scope = (SELECT canonical FROM session_spellings WHERE spelling = scope)
WHERE scope IN (SELECT spelling FROM session_spellings);
UPDATE tokens SET name = (SELECT canonical FROM session_spellings WHERE spelling = name)
WHERE name IN (SELECT spelling FROM session_spellings);
UPDATE leases SET session_id = (SELECT canonical FROM session_spellings WHERE spelling = session_id)
WHERE session_id IN (SELECT spelling FROM session_spellings);
UPDATE leases SET released_by = (SELECT canonical FROM session_spellings WHERE spelling = released_by)
WHERE released_by IN (SELECT spelling FROM session_spellings);
UPDATE messages SET from_session = (SELECT canonical FROM session_spellings WHERE spelling = from_session)
WHERE from_session IN (SELECT spelling FROM session_spellings);
UPDATE messages SET to_session = (SELECT canonical FROM session_spellings WHERE spelling = to_session)
WHERE to_session IN (SELECT spelling FROM session_spellings);
UPDATE messages SET escalate_to = (SELECT canonical FROM session_spellings WHERE spelling = escalate_to)
WHERE escalate_to IN (SELECT spelling FROM session_spellings);
UPDATE todos SET created_by = (SELECT canonical FROM session_spellings WHERE spelling = created_by)
WHERE created_by IN (SELECT spelling FROM session_spellings);
UPDATE todos SET completed_by = (SELECT canonical FROM session_spellings WHERE spelling = completed_by)
WHERE completed_by IN (SELECT spelling FROM session_spellings);
UPDATE workflows SET created_by = (SELECT canonical FROM session_spellings WHERE spelling = created_by)
WHERE created_by IN (SELECT spelling FROM session_spellings);
UPDATE work_items SET created_by = (SELECT canonical FROM session_spellings WHERE spelling = created_by)
WHERE created_by IN (SELECT spelling FROM session_spellings);
UPDATE work_items SET updated_by = (SELECT canonical FROM session_spellings WHERE spelling = updated_by)
WHERE updated_by IN (SELECT spelling FROM session_spellings);
UPDATE work_items SET assigned_to = (SELECT canonical FROM session_spellings WHERE spelling = assigned_to)
WHERE assigned_to IN (SELECT spelling FROM session_spellings);
UPDATE components SET updated_by = (SELECT canonical FROM session_spellings WHERE spelling = updated_by)
WHERE updated_by IN (SELECT spelling FROM session_spellings);
UPDATE halts SET halted_by = (SELECT canonical FROM session_spellings WHERE spelling = halted_by)
WHERE halted_by IN (SELECT spelling FROM session_spellings);
UPDATE events SET session_id = (SELECT canonical FROM session_spellings WHERE spelling = session_id)
WHERE session_id IN (SELECT spelling FROM session_spellings);
UPDATE events SET target = (SELECT canonical FROM session_spellings WHERE spelling = target)
WHERE target IN (SELECT spelling FROM session_spellings);

DROP TABLE session_spellings;
CREATE UNIQUE INDEX sessions_by_key ON sessions (session_key);
