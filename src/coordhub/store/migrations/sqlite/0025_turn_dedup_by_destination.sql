-- An identical retry is the same conversation, author, content and destination (core/conversations.py): the same
-- file sent to another address is a new turn for that address (review: it was answered dedup with the first turn,
-- and never reached the second). The dedup lookup's index names the destination too.
DROP INDEX IF EXISTS turns_by_content;
CREATE INDEX turns_by_content ON turns (conversation_id, author, content_sha256, to_address);
