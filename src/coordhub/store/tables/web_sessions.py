"""Dashboard sign-ins: one row per signed-in browser, keyed by the hash of its cookie."""

from __future__ import annotations

from coordhub.store.base import Row
from coordhub.store.tables.base import Table
from coordhub.store.tables.tokens import SESSION_OF_TOKEN, TOKEN_EPOCH


class WebSessions(Table):
    """The ``web_sessions`` table."""

    def add(self, row: Row) -> None:
        """Insert a web session (``cookie_hash``, ``token_id``, ``csrf_token``, ``created_at``, ``expires_at``)."""
        self.insert("web_sessions", row)

    def live(self, cookie_hash: str, now: float) -> Row | None:
        """The unexpired web session with this cookie hash whose token is unrevoked, joined with that token.

        The row has ``csrf_token``, ``expires_at``, ``token_hash``, ``name``
        (the session id the token acts as), ``is_admin`` and the session's
        ``token_epoch``; None when there is none (never signed in, signed out,
        expired, or the token revoked).
        """
        return self.ex.one(
            f"SELECT w.csrf_token, w.expires_at, t.token_hash, t.name, t.is_admin, {TOKEN_EPOCH} FROM web_sessions w "
            f"JOIN tokens t ON t.id = w.token_id {SESSION_OF_TOKEN} WHERE w.cookie_hash = ? AND w.expires_at > ? "
            "AND t.revoked_at IS NULL", (cookie_hash, now))

    def remove(self, cookie_hash: str) -> int:
        """Delete the web session with this cookie hash; return how many rows went (0 or 1)."""
        return self.ex.execute("DELETE FROM web_sessions WHERE cookie_hash = ?", (cookie_hash,))

    def prune(self, token_id: str, keep: int, now: float) -> list[str]:
        """Delete every expired web session, and all but the newest ``keep`` of ``token_id``; return the cookie
        hashes of the unexpired ones that went (pushed out by the newer ones)."""
        self.ex.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (now,))
        older = [r["cookie_hash"] for r in self.ex.all(
            "SELECT cookie_hash FROM web_sessions WHERE token_id = ? AND cookie_hash NOT IN (SELECT cookie_hash "
            "FROM web_sessions WHERE token_id = ? ORDER BY created_at DESC, cookie_hash LIMIT ?)",
            (token_id, token_id, keep))]
        for cookie_hash in older:
            self.remove(cookie_hash)
        return older
