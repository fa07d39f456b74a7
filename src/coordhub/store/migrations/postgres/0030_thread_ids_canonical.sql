-- A thread named by a message's id matches that id in any of its spellings (coordhub.ids.canonical): sends and
-- thread reads now store and ask the lower-case 36-character form. A thread an older hub stored under another
-- spelling of a UUID (upper case, braces, urn:uuid:, 32 hex digits) is rewritten to that form here, so its
-- messages are still found by the id it names. Any other thread name is left as it was.
UPDATE messages
   SET thread_id = lower(regexp_replace(thread_id, '^(urn:uuid:|\{)?([0-9A-Fa-f]{8})-?([0-9A-Fa-f]{4})-?([0-9A-Fa-f]{4})-?([0-9A-Fa-f]{4})-?([0-9A-Fa-f]{12})\}?$', '\2-\3-\4-\5-\6'))
 WHERE thread_id ~ '^(urn:uuid:|\{)?([0-9A-Fa-f]{8})-?([0-9A-Fa-f]{4})-?([0-9A-Fa-f]{4})-?([0-9A-Fa-f]{4})-?([0-9A-Fa-f]{12})\}?$'
   AND thread_id <> lower(regexp_replace(thread_id, '^(urn:uuid:|\{)?([0-9A-Fa-f]{8})-?([0-9A-Fa-f]{4})-?([0-9A-Fa-f]{4})-?([0-9A-Fa-f]{4})-?([0-9A-Fa-f]{12})\}?$', '\2-\3-\4-\5-\6'));
