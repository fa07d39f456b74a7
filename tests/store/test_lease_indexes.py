"""Live leases carry exactly the indexes their reads use (issue 15: each one costs every claim and release).

``leases_active_by_scope`` (project_key, scope) serves every read by project;
the older ``leases_active_by_project`` (project_key) is gone (migration 0017).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coordhub.clock import ManualClock
from coordhub.core import leases
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.store import Store
from coordhub.store.sqlite import SQLiteStore

LIVE = "state = 'active' AND (expires_at IS NULL OR expires_at > ?)"
# The reads by project a claim, an overlap check and a listing make (coordhub.store.tables.leases).
BY_PROJECT = {
    "listing": f"SELECT * FROM leases WHERE {LIVE} AND project_key = ? ORDER BY fence",
    "listing of a holder": f"SELECT * FROM leases WHERE {LIVE} AND project_key = ? AND session_id = ? ORDER BY fence",
    "at scopes": f"SELECT * FROM leases WHERE project_key = ? AND scope IN (?, ?) AND {LIVE} ORDER BY fence",
    "unscoped": f"SELECT * FROM leases WHERE project_key = ? AND scope IS NULL AND {LIVE} ORDER BY fence",
    "beneath": f"SELECT * FROM leases WHERE project_key = ? AND scope >= ? AND scope < ? AND {LIVE} "
               "AND kind <> 'name' ORDER BY fence LIMIT 1",
    "beneath the root": f"SELECT * FROM leases WHERE project_key = ? AND scope > '' AND {LIVE} AND kind <> 'name'",
}


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
    store = SQLiteStore(tmp_path / "coord.db")
    store.open()
    try:
        hub = Hub(store, ManualClock())
        for n in range(40):
            who = Actor(f"S{n % 5}/main")
            hub.mutate_sync(who, lambda tx, now, n=n, who=who: leases.claim(
                tx, who, project_key=f"p{n % 8}", resource=f"src/{n}/f.py", description=None, ttl_hours=1,
                now=now))
        sql = BY_PROJECT[read]
        plan = store.read_sync(lambda tx: tx.ex.all("EXPLAIN QUERY PLAN " + sql, ("x",) * sql.count("?")))
    finally:
        store.close()
    details = [str(r["detail"]) for r in plan]
    assert any("USING INDEX leases_active_by_scope (project_key=?" in d for d in details), details
