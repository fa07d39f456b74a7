"""Live leases carry exactly the indexes their reads use (issue 15: each one costs every claim and release).

``leases_active_by_scope`` (project_key, scope) serves every read by project;
the older ``leases_active_by_project`` (project_key) is gone (migration 0017).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from coordhub.clock import ManualClock
from coordhub.core import leases
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.store import Store
from coordhub.store.base import Executor
from coordhub.store.sqlite import SQLiteStore
from coordhub.store.tables.leases import Leases

# The reads by project a listing, an overlap check and a claim make, each as the table issues it.
BY_PROJECT: dict[str, Callable[[Leases], object]] = {
    "listing": lambda t: t.live(1.0, project_key="p1"),
    "listing of a holder": lambda t: t.live(1.0, project_key="p1", session_id="S1/main"),
    "a claim's scans": lambda t: t.candidates("p1", 1.0, scopes=["", "src", "src/1"], beneath="src/1",
                                              exclude="S1/main", beneath_limit=1, due=False),
    "a claim's scans from the root": lambda t: t.candidates("p1", 1.0, scopes=[""], beneath="", exclude=None,
                                                            beneath_limit=None, due=False),
}


class Recorder:
    """An executor that keeps the queries a table's read asks (each arm of a compound one) and answers none."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, tuple[Any, ...]]] = []

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        self.queries.append((sql, params))
        return []

    def parts(self, queries: list[tuple[str, tuple[Any, ...]]], order: str) -> list[list[Any]]:
        self.queries.extend(queries)
        return [[] for _ in queries]

    def scanned(self, scan: object) -> None:
        return None


def _lease_indexes(store: Store) -> set[str]:
    if store.name == "postgresql":
        sql = "SELECT indexname AS name FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'leases'"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leases'"
    return {str(r["name"]) for r in store.read_sync(lambda tx: tx.ex.all(sql))}


def test_live_leases_are_indexed_by_project_once(store: Store) -> None:
    names = _lease_indexes(store)
    assert "leases_active_by_scope" in names
    assert "leases_active_by_project" not in names


@pytest.mark.parametrize("read", sorted(BY_PROJECT))
def test_every_read_by_project_searches_the_scope_index(read: str, tmp_path: Path) -> None:
    """SQLite's planner takes the (project_key, scope) index for each read, on a table with leases of many
    projects and holders (a full scan here would run under the writer's lock on every claim). PostgreSQL
    chooses by its statistics; its index set is checked above."""
    recorder = Recorder()
    BY_PROJECT[read](Leases(cast(Executor, recorder)))
    assert recorder.queries
    store = SQLiteStore(tmp_path / "coord.db")
    store.open()
    try:
        hub = Hub(store, ManualClock())
        for n in range(40):
            who = Actor(f"S{n % 5}/main")
            hub.mutate_sync(who, lambda tx, now, n=n, who=who: leases.claim(
                tx, who, project_key=f"p{n % 8}", resource=f"src/{n}/f.py", description=None, ttl_hours=1,
                now=now))
        plans = store.read_sync(lambda tx: [tx.ex.all("EXPLAIN QUERY PLAN " + sql, params)
                                            for sql, params in recorder.queries])
    finally:
        store.close()
    for (sql, _), plan in zip(recorder.queries, plans, strict=True):
        details = [str(r["detail"]) for r in plan]
        assert any("USING INDEX leases_active_by_scope (project_key=?" in d for d in details), (sql, details)


def test_a_claims_scans_are_the_same_text_objects_claim_after_claim() -> None:
    """A claim's scans are written once per shape (issue 15): two claims of the same shape hand the store the
    same text objects (their hash kept, the compound statement's cache found by identity), with the text a scan
    has always had."""
    first, second = Recorder(), Recorder()
    for recorder, path in ((first, "src/1"), (second, "lib/2")):
        Leases(cast(Executor, recorder)).candidates("p1", 1.0, scopes=["", path.split("/")[0], path], beneath=path,
                                                    exclude="S1/main", beneath_limit=1, due=True)
    assert all(a[0] is b[0] for a, b in zip(first.queries, second.queries, strict=True))
    brief = ("id, fence, project_key, resource, kind, session_id, ttl_hours, acquired_at, renewed_at, expires_at, "
             "state, released_at, released_by, updated_at, release_reason, scope, scope_is_dir")
    live = "state = 'active' AND (expires_at IS NULL OR expires_at > ?)"
    assert first.queries == [
        (f"SELECT {brief} FROM leases WHERE project_key = ? AND scope IN (?, ?, ?) AND {live} ORDER BY fence",
         ("p1", "", "src", "src/1", 1.0)),
        (f"SELECT {brief} FROM leases WHERE project_key = ? AND scope IS NULL AND {live} ORDER BY fence", ("p1", 1.0)),
        (f"SELECT {brief} FROM leases WHERE project_key = ? AND scope >= ? AND scope < ? AND {live} "
         "AND kind <> 'name' AND session_id <> ? ORDER BY fence LIMIT 1", ("p1", "src/1/", "src/10", 1.0, "S1/main")),
        (f"SELECT {brief} FROM leases WHERE state = 'active' AND expires_at IS NOT NULL AND expires_at <= ? "
         "ORDER BY fence", (1.0,))]
