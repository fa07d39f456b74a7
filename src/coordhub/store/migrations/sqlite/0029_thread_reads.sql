-- A thread as one session reads it (GET /api/coord/messages?thread_id=): its broadcasts and what was sent to the
-- session along the first, what the session sent along the second, each in seq order. Along messages_by_thread
-- alone a read passed over every message of the thread the session may not see: one token's day of messages to
-- others in a thread made each reader's page of it scan 100,000 rows (review).
CREATE INDEX messages_thread_to ON messages (thread_id, to_session, seq) WHERE thread_id IS NOT NULL;
CREATE INDEX messages_thread_from ON messages (thread_id, from_session, seq) WHERE thread_id IS NOT NULL;
