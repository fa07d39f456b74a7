-- Retention (issue 14 point 4): where a session's last event stream ended, so the pruner keeps the
-- events its resume needs, and an index that finds ended leases oldest first without a scan.
ALTER TABLE sessions ADD COLUMN stream_cursor BIGINT;
CREATE INDEX leases_ended ON leases (updated_at) WHERE state <> 'active';
-- A message's receipts by message: the pruner removes a message with all of them (a broadcast has one per reader).
CREATE INDEX receipts_by_message ON receipts (message_seq);
