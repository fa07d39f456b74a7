"""Leases and the fencing counter."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from coordhub.store.base import Row, Scan
from coordhub.store.tables.base import Table

_LIVE = "state = 'active' AND (expires_at IS NULL OR expires_at > ?)"

#: What an overlap check reads of a lease: every column but ``description`` (up to 4 KiB a lease, more in rows
#: granted before that bound), which only an answer needs; those read the rows they answer in full (:meth:`full`).
BRIEF = ("id, fence, project_key, resource, kind, session_id, ttl_hours, acquired_at, renewed_at, expires_at, "
         "state, released_at, released_by, updated_at, release_reason, scope, scope_is_dir")


# A claim's scans, their text made once per shape (issue 15): built with every claim, four statements of ~400
# characters each were formatted, then hashed anew as the key of the claim's compound statement (sqlite._compound).
# The same text objects each time keep their hash, and the compound's lookup compares them by identity first.
_UNSCOPED_SQL = f"SELECT {BRIEF} FROM leases WHERE project_key = ? AND scope IS NULL AND {_LIVE}"
_BENEATH_SQL = (f"SELECT {BRIEF} FROM leases WHERE project_key = ? AND scope >= ? AND scope < ? AND {_LIVE} "
                "AND kind <> 'name'")
_BENEATH_ROOT_SQL = f"SELECT {BRIEF} FROM leases WHERE project_key = ? AND scope > '' AND {_LIVE} AND kind <> 'name'"
_DUE_SQL = (f"SELECT {BRIEF} FROM leases WHERE state = 'active' AND expires_at IS NOT NULL AND expires_at <= ? "
            "ORDER BY fence")


@functools.lru_cache(maxsize=128)
def _at_scopes_sql(count: int) -> str:
    """The scan of the leases filed at one of ``count`` scopes."""
    return f"SELECT {BRIEF} FROM leases WHERE project_key = ? AND scope IN ({', '.join('?' * count)}) AND {_LIVE}"


@functools.lru_cache(maxsize=256)
def _ordered(sql: str, exclude: bool, limit: int | None) -> str:
    """``sql`` without the leases of one holder (``exclude``: its parameter last), oldest grant first, at most
    ``limit`` (None: all)."""
    return (sql + (" AND session_id <> ?" if exclude else "") + " ORDER BY fence"
            + (f" LIMIT {int(limit)}" if limit is not None else ""))


def is_live(row: Row, now: float) -> bool:
    """``_LIVE`` for a row in hand: active and not past ``expires_at`` at ``now``.

    A NaN ``expires_at`` (only an archive could bring one) counts as live, as PostgreSQL's ``NaN > now`` does.
    """
    return row["state"] == "active" and (row["expires_at"] is None or not row["expires_at"] <= now)


class Candidates(NamedTuple):
    """The rows :meth:`Leases.candidates` read, each list oldest grant first ([] for what was not read)."""

    at_scopes: list[Row]
    unscoped: list[Row]
    beneath: list[Row]
    due: list[Row]


class Leases(Table):
    """The ``leases`` table; "live" means active and not past ``expires_at`` at ``now``."""

    def next_fence(self) -> int:
        """Take the next value of the one persisted fencing counter (strictly increasing)."""
        return self.ex.next_value("fence")

    def add(self, row: Row) -> None:
        """Insert a new lease row."""
        self.insert("leases", row)

    def get(self, lease_id: str) -> Row | None:
        """The lease with this id in any state, or None.

        Read ahead when the unit named this id (:meth:`one_ahead`).
        """
        return self.one_ahead("leases", lease_id, "SELECT * FROM leases WHERE id = ?")

    def by_fence(self, fence: int) -> Row | None:
        """The lease granted with this fence, in any state, or None."""
        return self.ex.one("SELECT * FROM leases WHERE fence = ?", (fence,))

    def live(self, now: float, project_key: str | None = None, session_id: str | None = None, *,
             after_fence: int = 0, limit: int | None = None, brief: bool = False) -> list[Row]:
        """Live leases, optionally of one project and/or one holder, oldest grant first: those granted after
        ``after_fence``, at most ``limit``; ``brief``: without ``description`` (:data:`BRIEF`)."""
        sql = f"SELECT {BRIEF if brief else '*'} FROM leases WHERE {_LIVE}"
        params: list[Any] = [now]
        if project_key is not None:
            sql, params = sql + " AND project_key = ?", [*params, project_key]
        if session_id is not None:
            sql, params = sql + " AND session_id = ?", [*params, session_id]
        if after_fence:
            sql, params = sql + " AND fence > ?", [*params, after_fence]
        return self.ex.all(sql + " ORDER BY fence" + (f" LIMIT {int(limit)}" if limit is not None else ""),
                           tuple(params))

    def full(self, ids: list[str]) -> dict[str, Row]:
        """The whole rows of the leases with these ids (any state), by id."""
        out: dict[str, Row] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            out.update((r["id"], r) for r in self.ex.all(f"SELECT * FROM leases WHERE id IN ({marks})", tuple(chunk)))
        return out

    def active_of(self, session_id: str, cap: int) -> int:
        """How many leases of ``session_id`` are marked active, counted up to ``cap`` (an index-only count over
        ``leases_active_by_session``; leases past their expiry count until recorded as expired)."""
        row = self.ex.one("SELECT COUNT(*) AS n FROM (SELECT 1 FROM leases WHERE session_id = ? AND state = 'active' "
                          f"LIMIT {int(cap)}) AS t", (session_id,))
        return int(row["n"]) if row else 0

    def count_live(self, now: float) -> int:
        """How many leases are live at ``now`` (for metrics)."""
        row = self.ex.one(f"SELECT COUNT(*) AS n FROM leases WHERE {_LIVE}", (now,))
        return int(row["n"]) if row else 0

    def at_scopes(self, project_key: str, scopes: list[str], now: float, exclude: str | None) -> list[Row]:
        """Live leases of a project filed exactly under one of ``scopes`` (not held by ``exclude``)."""
        return self.ex.all(*self._at_scopes(project_key, scopes, now, exclude))

    def beneath_scope(self, project_key: str, scope: str, now: float, exclude: str | None,
                      limit: int | None = None) -> list[Row]:
        """Live path and glob leases of a project filed strictly beneath ``scope`` ("": every one), oldest first.

        NAMEs are left out: they never overlap a path or a glob.
        """
        return self.ex.all(*self._beneath_scope(project_key, scope, now, exclude, limit))

    def unscoped(self, project_key: str, now: float, exclude: str | None) -> list[Row]:
        """Live leases of a project not yet filed under a scope (granted before the index existed)."""
        return self.ex.all(*self._unscoped(project_key, now, exclude))

    def candidates(self, project_key: str, now: float, *, scopes: list[str], beneath: str | None,
                   exclude: str | None, beneath_limit: int | None, due: bool) -> Candidates:
        """What a claim or an overlap check reads, in one go (``Executor.parts``: one statement on SQLite, one round
        trip on PostgreSQL).

        :meth:`at_scopes` for ``scopes`` (held by anyone: the caller leaves
        ``exclude`` out itself), :meth:`unscoped` (anyone's),
        :meth:`beneath_scope` for ``beneath`` (None: not read) without
        ``exclude``'s, at most ``beneath_limit``, and :meth:`due` when ``due``.
        Empty lists for what was not read.
        """
        ahead = self._ahead(Scan(project_key, tuple(scopes), beneath), now, exclude, beneath_limit, due)
        if ahead is not None:
            return ahead
        queries = [self._at_scopes(project_key, scopes, now, None), self._unscoped(project_key, now, None)]
        if beneath is not None:
            queries.append(self._beneath_scope(project_key, beneath, now, exclude, beneath_limit))
        if due:
            queries.append(self._due(now))
        rows = self.ex.parts(queries, "fence")
        return Candidates(rows[0], rows[1], rows[2] if beneath is not None else [], rows[-1] if due else [])

    def _ahead(self, scan: Scan, now: float, exclude: str | None, beneath_limit: int | None,
               due: bool) -> Candidates | None:
        """:meth:`candidates` from the rows the batch read ahead (the unit named ``scan``; PostgreSQL), filtered
        here as the queries filter, or None when they are not known (or leases are due: their rows are asked).

        The rows are whole, ``description`` included (a read ahead reads them so, and follows the batch's writes
        to them): a claim refused for one of them answers with its holder's description without asking for it
        (``leases._whole``), which would cost the refusal a round trip, and its rollback one more."""
        scanned = self.ex.scanned(scan)
        if scanned is None or (due and not scanned.due_known):
            return None
        if due and scanned.due_at is not None and scanned.due_at <= now:
            return None
        live = [r for r in scanned.filed if is_live(r, now)]
        below = [r for r in scanned.beneath if is_live(r, now) and r["session_id"] != exclude]
        return Candidates([r for r in live if r["scope"] in scan.scopes], [r for r in live if r["scope"] is None],
                          below[:beneath_limit] if beneath_limit is not None else below, [])

    def _at_scopes(self, project_key: str, scopes: list[str], now: float,
                   exclude: str | None) -> tuple[str, tuple[Any, ...]]:
        return self._held_by_others(_at_scopes_sql(len(scopes)), (project_key, *scopes, now), exclude)

    def _beneath_scope(self, project_key: str, scope: str, now: float, exclude: str | None,
                       limit: int | None) -> tuple[str, tuple[Any, ...]]:
        if scope:
            params: tuple[Any, ...] = (project_key, scope + "/", scope + "0", now)  # "0" follows "/"
            return self._held_by_others(_BENEATH_SQL, params, exclude, limit)
        return self._held_by_others(_BENEATH_ROOT_SQL, (project_key, now), exclude, limit)

    def _unscoped(self, project_key: str, now: float, exclude: str | None) -> tuple[str, tuple[Any, ...]]:
        return self._held_by_others(_UNSCOPED_SQL, (project_key, now), exclude)

    @staticmethod
    def _held_by_others(sql: str, params: tuple[Any, ...], exclude: str | None,
                        limit: int | None = None) -> tuple[str, tuple[Any, ...]]:
        if exclude is not None:
            params = (*params, exclude)
        return _ordered(sql, exclude is not None, limit), params

    def shows_directory(self, project_key: str, key: str, now: float) -> bool:
        """Whether a live lease of the project shows ``key`` is a directory: one lies beneath it, or is a
        glob or directory filed at it. (Two indexed lookups: an ``OR`` of both would scan the project.)"""
        beneath = self.ex.one(f"SELECT 1 AS hit FROM leases WHERE project_key = ? AND scope >= ? AND scope < ? "
                              f"AND {_LIVE} LIMIT 1", (project_key, key + "/", key + "0", now))
        return beneath is not None or self.ex.one(
            f"SELECT 1 AS hit FROM leases WHERE project_key = ? AND scope = ? AND scope_is_dir = 1 AND {_LIVE} "
            "LIMIT 1", (project_key, key, now)) is not None

    def file_scope(self, lease_id: str, scope: str, scope_is_dir: bool) -> None:
        """Record the scope of a lease granted before the index existed."""
        self.ex.execute("UPDATE leases SET scope = ?, scope_is_dir = ? WHERE id = ?",
                        (scope, int(scope_is_dir), lease_id))

    def due(self, now: float) -> list[Row]:
        """Leases still marked active whose ``expires_at`` has passed (:data:`BRIEF`: no ``description``)."""
        return self.ex.all(*self._due(now))

    @staticmethod
    def _due(now: float) -> tuple[str, tuple[Any, ...]]:
        return _DUE_SQL, (now,)

    def end(self, lease_id: str, state: str, now: float, by: str | None, reason: str | None = None) -> None:
        """Move a lease to a final state (released, expired, revoked, stale_takeover), with who and why (deferred)."""
        self.ex.defer("UPDATE leases SET state = ?, released_at = ?, released_by = ?, release_reason = ?, "
                      "updated_at = ? WHERE id = ?", (state, now, by, reason, now, lease_id))

    def extend(self, lease_id: str, ttl_hours: float, expires_at: float | None, now: float) -> None:
        """Record a renewal: new TTL and expiry (and ``renewed_at``, ``updated_at``: ``now``; nothing else). Deferred
        (``Executor.defer``): the caller read the live row first, so it changes exactly that one."""
        self.ex.defer("UPDATE leases SET ttl_hours = ?, expires_at = ?, renewed_at = ?, updated_at = ? WHERE id = ?",
                      (ttl_hours, expires_at, now, now, lease_id))
