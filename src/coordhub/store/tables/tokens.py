"""Bearer tokens, stored as SHA-256 hashes only."""

from __future__ import annotations

from coordhub.store.base import Row
from coordhub.store.tables.base import Table

#: A token row ``t``'s session ``s`` and its token epoch (0 while the session has no row): what an actor
#: authenticated by the token remembers (``Actor.token_epoch``).
SESSION_OF_TOKEN = "LEFT JOIN sessions s ON s.session_key = lower(t.name)"
TOKEN_EPOCH = "COALESCE(s.token_epoch, 0) AS token_epoch"


class Tokens(Table):
    """The ``tokens`` table."""

    def add(self, row: Row) -> None:
        """Insert a token row (``token_hash``, never the token)."""
        self.insert("tokens", row)

    def by_hash(self, token_hash: str) -> Row | None:
        """The unrevoked token with this hash, with its session's ``token_epoch`` (0 while it has no row), or None."""
        return self.ex.one(f"SELECT t.*, {TOKEN_EPOCH} FROM tokens t {SESSION_OF_TOKEN} "
                           "WHERE t.token_hash = ? AND t.revoked_at IS NULL", (token_hash,))

    def live_hashes(self) -> list[str]:
        """The hash of every token not revoked."""
        return [str(r["token_hash"]) for r in self.ex.all("SELECT token_hash FROM tokens WHERE revoked_at IS NULL")]

    def all(self, include_revoked: bool = False) -> list[Row]:
        """Every token row (without hashes), oldest first."""
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        return self.ex.all("SELECT id, name, is_admin, created_at, revoked_at FROM tokens"
                           + where + " ORDER BY created_at, id")

    def revoke(self, name: str, now: float) -> int:
        """Revoke every live token of ``name`` under any spelling (session ids compare case-insensitively: a
        token is stored under its session's first spelling, which may not be the caller's); return how many.

        When any was live, the session's ``token_epoch`` moves on (its row is
        made if it has none): an actor authenticated under the epoch before
        is refused by every write from now on, in that write's own transaction
        (``Hub.mutate``), whichever hub process's cache it came from.
        """
        # Its spelling and the session's stored one (tokens_by_name serves both; lower(name) would scan them all)
        count = self.ex.execute("UPDATE tokens SET revoked_at = ? WHERE name IN (?, (SELECT session_id FROM sessions "
                                "WHERE session_key = lower(?))) AND revoked_at IS NULL", (now, name, name))
        if count:
            self.ex.execute("INSERT INTO sessions (session_id, session_key, first_seen, last_seen, token_epoch) "
                            "VALUES (?, lower(?), ?, ?, 1) ON CONFLICT (session_key) DO UPDATE SET "
                            "token_epoch = sessions.token_epoch + 1", (name, name, now, now))
        return count

    def admin_count(self) -> int:
        """How many unrevoked admin tokens exist."""
        row = self.ex.one("SELECT COUNT(*) AS n FROM tokens WHERE is_admin = 1 AND revoked_at IS NULL")
        return int(row["n"]) if row else 0
