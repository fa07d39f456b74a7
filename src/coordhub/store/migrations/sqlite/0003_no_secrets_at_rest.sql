-- coordhub schema 0003 (SQLite): no token at rest. Earlier hubs kept the first response of
-- `token create` (the new token itself) in the idempotency table for replays. Keep the record,
-- drop the token, and say so, as a replay now does (core/idempotency.py SecretBody). The store
-- runs this with secure_delete on and truncates the WAL afterwards, so the old bytes do not
-- linger in free pages or WAL frames.

UPDATE idempotency
SET body = json_set(json_remove(body, '$.token'),
                    '$.token_shown', json('false'),
                    '$.message', 'this repeats an earlier token create (same Idempotency-Key): the token was '
                                 || 'shown only in the first response and is stored nowhere; if it was lost, '
                                 || 'revoke this name and create a new token')
WHERE json_valid(body) AND json_type(body, '$.token') IS NOT NULL;
