-- Seed 004's conversations on the hub (issue 9).

-- A session's conversation address, <machine>.<project> (both lower case), and the
-- tools it declares (a JSON array of names) for REQUIRES_TOOLS.
ALTER TABLE sessions ADD COLUMN machine TEXT;
ALTER TABLE sessions ADD COLUMN project TEXT;
ALTER TABLE sessions ADD COLUMN tools TEXT;
-- The newest turn id the session's agent was shown by a hook (turns to its address with a larger id are news).
ALTER TABLE sessions ADD COLUMN turns_shown INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sessions_by_address ON sessions (machine, project) WHERE machine IS NOT NULL;

CREATE TABLE conversations (
    conversation_id TEXT PRIMARY KEY,          -- the seed's slug, e.g. prep-fixup
    title           TEXT NOT NULL,
    project         TEXT NOT NULL,             -- the project of the address that opened it
    created_by      TEXT NOT NULL,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    last_sequence   INTEGER NOT NULL DEFAULT 0, -- the hub-assigned sequence of the newest accepted turn
    last_release    INTEGER NOT NULL DEFAULT 0  -- the sequence of the newest release turn (0: none)
);

-- One row per turn, accepted or refused. Accepted turns (decision 'process') get the
-- conversation's next sequence in the same transaction as the insert; refused ones
-- (query, reject) have none and are shown only to their author.
CREATE TABLE turns (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id  TEXT NOT NULL,
    sequence         INTEGER,
    type             TEXT NOT NULL,
    author           TEXT NOT NULL,
    from_address     TEXT NOT NULL,
    to_address       TEXT NOT NULL,
    to_machine       TEXT NOT NULL,            -- the machine part of to_address (what sync pages by)
    created_at       REAL NOT NULL,
    stated_timestamp TEXT NOT NULL,            -- the author's #+TIMESTAMP, as written
    stated_sequence  INTEGER,                  -- the author's #+SEQUENCE (advisory)
    protocol_version TEXT NOT NULL,
    requires_tools   TEXT NOT NULL,            -- JSON array
    title            TEXT NOT NULL,
    body             TEXT NOT NULL,
    content          TEXT NOT NULL,            -- the org text; for a signed turn, the signed bytes
    content_sha256   TEXT NOT NULL,
    signature        TEXT,
    signer           TEXT,                     -- fingerprint of the key that verified the signature
    decision         TEXT NOT NULL,            -- process | query | reject
    reason           TEXT,
    UNIQUE (conversation_id, sequence)
);
CREATE INDEX turns_by_content ON turns (conversation_id, author, content_sha256);
CREATE INDEX turns_by_destination ON turns (to_address, id) WHERE decision = 'process';
CREATE INDEX turns_by_machine ON turns (to_machine, id) WHERE decision = 'process';
CREATE INDEX turns_by_author ON turns (author, id);

-- OpenPGP public keys sessions registered, to verify their turns' signatures.
CREATE TABLE signing_keys (
    session_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    armored     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (session_id, fingerprint)
);
