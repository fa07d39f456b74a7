-- A thread named by a message's id matches that id in any spelling the hub's routes take an id in
-- (coordhub.ids.canonical: 36 characters, 32 hex digits or 36 in braces, any case, optionally as a urn:uuid: URN):
-- sends and thread reads now store and ask the lower-case 36-character form. A thread an older hub stored under
-- another of those spellings is rewritten to that form here, so its messages are still found by the id it names.
-- Any other thread name is left as it was.
UPDATE messages
   SET thread_id = substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-' || substr(h, 17, 4)
                   || '-' || substr(h, 21, 12)
  FROM (SELECT id AS hid, replace(translate(regexp_replace(lower(thread_id), '^urn:uuid:', ''), '{}', ''), '-', '') AS h
          FROM messages WHERE thread_id ~* '^(urn:uuid:)?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}|\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\})$' AND thread_id !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$') AS spelt
 WHERE messages.id = spelt.hid;
