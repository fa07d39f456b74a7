-- A session's conversations are found from its own rows, not by testing every conversation (review: a listing
-- for a session in one conversation read all 20,000 that another session opened in a day, 11-12 ms, growing
-- for good): those it opened, and those with an accepted turn from or to its address. The turn indexes cover
-- the conversation id, so a planner that thinks an address unselective still searches them.
CREATE INDEX conversations_by_creator ON conversations (created_by);
CREATE INDEX turns_by_origin ON turns (from_address, conversation_id) WHERE decision = 'process';
CREATE INDEX turns_by_party ON turns (to_address, conversation_id) WHERE decision = 'process';
