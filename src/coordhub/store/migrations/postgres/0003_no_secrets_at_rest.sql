-- coordhub schema 0003 (PostgreSQL): no token at rest. Earlier hubs kept the first response of
-- `token create` (the new token itself) in the idempotency table for replays. Keep the record,
-- drop the token, and say so, as a replay now does (core/idempotency.py SecretBody). Dead tuple
-- versions are reclaimed by PostgreSQL's vacuum, as for any update.

UPDATE idempotency
SET body = ((body::jsonb - 'token')
            || jsonb_build_object('token_shown', false,
                                  'message', 'this repeats an earlier token create (same Idempotency-Key): the '
                                             || 'token was shown only in the first response and is stored '
                                             || 'nowhere; if it was lost, revoke this name and create a new token'))::text
WHERE body LIKE '{%' AND (body::jsonb -> 'token') IS NOT NULL;
