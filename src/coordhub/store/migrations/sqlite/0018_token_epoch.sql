-- A session's token epoch: how many times its tokens were revoked. A token's actor remembers the epoch it
-- was authenticated under, and every write compares it with its own session's row (read in the write's
-- transaction, as it is anyway): a token revoked through another hub process writes nothing once the
-- revocation is answered, whatever this process's token cache still holds.
ALTER TABLE sessions ADD COLUMN token_epoch INTEGER NOT NULL DEFAULT 0;
