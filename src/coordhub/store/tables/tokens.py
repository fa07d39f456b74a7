"""Bearer tokens, stored as SHA-256 hashes only."""

from __future__ import annotations

from collections.abc import Callable

from coordhub.store.base import Row
from coordhub.store.tables.base import Table


class Tokens(Table):
    """The ``tokens`` table."""

    def add(self, row: Row) -> None:
        """Insert a token row (``token_hash``, never the token)."""
        self.insert("tokens", row)

    def by_hash(self, token_hash: str) -> Row | None:
        """The unrevoked token with this hash, or None."""
        return self.ex.one("SELECT * FROM tokens WHERE token_hash = ? AND revoked_at IS NULL", (token_hash,))

    def live_then(self, token_hash: str, check: Callable[[bool], None]) -> None:
        """Hand ``check`` whether the token with this hash is live (known and not revoked).

        Read with the batch's ``BEGIN`` when the unit named the hash (PostgreSQL: :class:`~coordhub.store.base.Ahead`)
        and no write of the batch touched ``tokens`` since; else asked with ``Executor.expect`` (on PostgreSQL
        it travels with the unit's next statement, and ``check`` runs before that statement's answer is used).
        """
        known, row = self.ex.ahead("tokens", token_hash)
        if known:
            check(row is not None)
            return
        self.ex.expect("SELECT token_hash FROM tokens WHERE token_hash = ? AND revoked_at IS NULL", (token_hash,),
                       lambda rows: check(bool(rows)))

    def all(self, include_revoked: bool = False) -> list[Row]:
        """Every token row (without hashes), oldest first."""
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        return self.ex.all("SELECT id, name, is_admin, created_at, revoked_at FROM tokens"
                           + where + " ORDER BY created_at, id")

    def revoke(self, name: str, now: float) -> int:
        """Revoke every live token of ``name``; return how many."""
        return self.ex.execute("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                               (now, name))

    def admin_count(self) -> int:
        """How many unrevoked admin tokens exist."""
        row = self.ex.one("SELECT COUNT(*) AS n FROM tokens WHERE is_admin = 1 AND revoked_at IS NULL")
        return int(row["n"]) if row else 0
