-- coordhub schema, dashboard sign-in (sqlite): one row per signed-in browser (issue 13).

-- The browser holds a random cookie; the hub keeps only its SHA-256 hash, the
-- token it was signed in with (by id: revoking the token ends the web session
-- at once) and the CSRF token every state-changing request must echo. Signing
-- out deletes the row, so a copied cookie is dead from then on.
CREATE TABLE web_sessions (
    cookie_hash TEXT PRIMARY KEY,            -- sha256 hex of the cookie value; the cookie is never stored
    token_id    TEXT NOT NULL REFERENCES tokens (id),
    csrf_token  TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE INDEX web_sessions_by_token ON web_sessions (token_id, created_at);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
