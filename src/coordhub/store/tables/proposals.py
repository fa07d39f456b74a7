"""The ``proposals`` table: what the planning brain proposed (``coord plan``), until approved or split."""

from __future__ import annotations

from typing import Any

from coordhub.store.base import Row
from coordhub.store.tables.base import Table
from coordhub.store.tables.records import Key


class Proposals(Table):
    """The ``proposals`` table (ids from the ``counters`` row ``proposal``)."""

    def next_id(self) -> int:
        """Take the next proposal id (strictly increasing, never reused)."""
        return self.ex.next_value("proposal")

    def add(self, row: Row) -> None:
        """Insert a new proposal."""
        self.insert("proposals", row)

    def get(self, proposal_id: int) -> Row | None:
        """The proposal with this id, or None."""
        return self.ex.one("SELECT * FROM proposals WHERE id = ?", (proposal_id,))

    def set(self, proposal_id: int, changes: Row) -> None:
        """Update columns of a proposal."""
        self.update("proposals", "id", proposal_id, changes)

    key: Key = (("id", int, True),)
    """The order of a list of proposals: newest (highest id) first."""

    def find(self, state: str | None = None, repo: str | None = None, limit: int = 200,
             after: tuple[Any, ...] | None = None) -> list[Row]:
        """At most ``limit`` proposals, newest first, optionally in one state and of one repo, after the one whose
        ``key`` columns hold ``after`` (None: from the newest)."""
        sql, params = "SELECT * FROM proposals WHERE 1 = 1", []
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        if repo is not None:
            sql += " AND repo = ?"
            params.append(repo)
        if after is not None:
            sql += " AND id < ?"
            params.append(after[0])
        return self.ex.all(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))

    def pending_for(self, repo: str, issue: int, kind: str) -> list[Row]:
        """The pending proposals of one kind for an issue, oldest first."""
        return self.ex.all("SELECT * FROM proposals WHERE repo = ? AND issue = ? AND kind = ? AND state = 'pending' "
                           "ORDER BY id", (repo, issue, kind))
