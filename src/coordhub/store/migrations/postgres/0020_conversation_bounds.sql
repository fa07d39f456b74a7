-- Bounds on what conversations store (security review: one token could store ~75 MiB/s, never pruned).

-- Every recorded turn (accepted or refused) and its stored bytes, per conversation: the per-conversation bounds.
ALTER TABLE conversations ADD COLUMN turns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
-- A turn's stored bytes (content + body), so a page of turns is cut by size without loading any text.
ALTER TABLE turns ADD COLUMN size INTEGER;
-- 0: the body is in `body`; 1: `body` is empty and the body is the file's (`content`) own; 2: the same
-- without its final newline (a field-form body, which the file holds normalized). The text is stored once.
ALTER TABLE turns ADD COLUMN body_in_content INTEGER NOT NULL DEFAULT 0;
UPDATE turns SET size = octet_length(content) + octet_length(body);
UPDATE conversations SET
    turns = (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = conversations.conversation_id),
    bytes = (SELECT COALESCE(SUM(t.size), 0) FROM turns t WHERE t.conversation_id = conversations.conversation_id);

-- Turns and bytes each session stored per UTC day (days since the epoch): the per-session bound.
CREATE TABLE turn_quota (
    session_id TEXT NOT NULL,
    day        INTEGER NOT NULL,
    turns      BIGINT NOT NULL DEFAULT 0,
    bytes      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, day)
);

-- A key belongs to one session: registering it looks for another holder by fingerprint.
CREATE INDEX signing_keys_by_fingerprint ON signing_keys (fingerprint);
