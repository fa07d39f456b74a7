"""The orchestrator's lists read no briefing, both backends.

An assignment's briefing is up to 64 KiB; the lists (``GET …/assignments``, ``GET …/status``, the session
summary, the merge queue) show only its size (``briefing_bytes``), or nothing of it (a merge entry keeps a copy
nobody reads back). They read every listed row's briefing all the same, to count its bytes. Now the size is kept
beside the text (migration 0033) and those queries name their columns (``LISTED``, ``COLUMNS``): these tests
check that the answers are what they were, that the briefing text never reaches the hub's process while a list is
made (by what the store's queries return), and that the column lists name every column of the tables but the
briefing (so a column added later is not silently missing from lists).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coordhub.store import migrate
from coordhub.store.postgres import PostgresExecutor
from coordhub.store.sqlite import SQLiteExecutor, SQLiteStore
from coordhub.store.tables import merging, orchestrator
from tests.conftest import Api, pg_database_before, sqlite_database_before
from tests.orchestrator.conftest import ORCH, Host, apply_config, assign, config, get

BIG = "é" * 30_000 + "the end"  # 60,007 bytes of UTF-8 (30,007 characters): a large briefing, within 64 KiB
MARK = "the end"


def _columns(api: Api, backend: str, table: str) -> set[str]:
    if backend == "sqlite":
        sql, params = f"PRAGMA table_info({table})", ()
        key = "name"
    else:
        sql, params = ("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                       "AND table_schema = current_schema()", (table,))
        key = "column_name"
    rows = api.hub.store.read_sync(lambda tx: tx.ex.all(sql, params))
    return {r[key] for r in rows}


def _names(listed: str) -> set[str]:
    return {c.strip() for c in listed.split(",")}


def test_the_column_lists_name_every_column_but_the_briefing(orch: Api, backend: str) -> None:
    assert _names(orchestrator.LISTED) == _columns(orch, backend, "assignments") - {"briefing"}
    assert _names(merging.COLUMNS) == _columns(orch, backend, "merge_entries") - {"briefing"}


@pytest.fixture
def returned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every value the store's queries return to the hub's process, from the moment the test starts reading."""
    seen: list[Any] = []
    for cls in (SQLiteExecutor, PostgresExecutor):
        for name in ("one", "all"):
            original = getattr(cls, name)

            def spy(self: Any, sql: str, params: tuple[Any, ...] = (), _f: Callable[..., Any] = original) -> Any:
                out = _f(self, sql, params)
                for row in out if isinstance(out, list) else [out] if out is not None else []:
                    seen.extend(row.values())
                return out

            monkeypatch.setattr(cls, name, spy)
    yield seen


def _bytes(values: list[Any]) -> int:
    return sum(len(v.encode("utf-8")) for v in values if isinstance(v, str))


def test_lists_show_the_briefing_size_and_read_no_briefing(orch: Api, user: dict[str, str],
                                                           returned: list[Any]) -> None:
    apply_config(orch, config(pipeline={"stages": ["merge"]}))
    laptop = Host(orch, "laptop", orch.token("laptop/agent"))
    laptop.register()
    ids = [assign(orch, user, issue=n, briefing=BIG if n != 1 else "short")["id"] for n in (1, 2, 3, 4)]
    job = laptop.next()
    assert job is not None and job["id"] == ids[0]
    laptop.report(job, "running")
    job2 = laptop.next()
    assert job2 is not None and job2["id"] == ids[1] and job2["briefing"] == BIG  # a dispatch gets the whole text
    laptop.report(job2, "done", pushed=True)  # stage merge: its branch enters the merge queue, briefing and all
    full = {aid: get(orch, aid) for aid in ids}
    assert full[ids[1]]["briefing"] == BIG

    def as_listed(a: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in a.items() if k not in ("briefing", "attempts")}
        return {**out, "briefing_bytes": len(a["briefing"].encode("utf-8"))}

    returned.clear()
    listed = orch.get(f"{ORCH}/assignments", headers=user).json()
    status = orch.get(f"{ORCH}/status", headers=user).json()
    summary = orch.get(f"{ORCH}/summary", headers=user).json()
    merges = orch.get(f"{ORCH}/merges", headers=user).json()
    # what the lists answer is what it was: every field of the assignment but its text, and its size in bytes
    assert listed == [as_listed(full[aid]) for aid in reversed(ids)]
    assert listed[-1]["briefing_bytes"] == 5 and listed[-2]["briefing_bytes"] == 60_007
    assert [{k: v for k, v in q.items() if k != "position"} for q in status["queue"]] == [
        as_listed(full[ids[2]]), as_listed(full[ids[3]])]
    assert [q["position"] for q in status["queue"]] == [1, 2]
    assert {a["id"]: a for a in status["assignments"]} == {aid: as_listed(full[aid]) for aid in ids[:2]}
    assert ([m["state"] for m in status["machines"] if m["machine"] == "laptop"], status["totals"]["running"],
            status["totals"]["queued"]) == (["online"], 1, 2)
    assert summary["assignments"]["total"] == 4
    assert [e["assignment_id"] for e in merges["queue"]] == [ids[1]]
    # and no briefing came out of the store to make them: three of 60 KB were there to read
    assert not [v for v in returned if isinstance(v, str) and MARK in v]
    assert _bytes(returned) < 60_000, _bytes(returned)


def _entry_briefings(api: Api) -> list[str]:
    return [r["briefing"] for r in api.hub.store.read_sync(lambda tx: tx.ex.all("SELECT briefing FROM merge_entries"))]


def test_a_merge_entry_stores_no_copy_of_the_briefing(orch: Api, user: dict[str, str]) -> None:
    """A merge entry stored its assignment's briefing (up to 64 KiB) that nothing read back (seed-003 user run)."""
    apply_config(orch, config(pipeline={"stages": ["merge"]}))
    laptop = Host(orch, "laptop", orch.token("laptop/agent"))
    laptop.register()
    aid = assign(orch, user, issue=1, briefing=BIG)["id"]
    job = laptop.next()
    assert job is not None and job["id"] == aid and job["briefing"] == BIG
    laptop.report(job, "done", pushed=True)  # stage merge: its branch enters the merge queue
    assert [e["assignment_id"] for e in orch.get(f"{ORCH}/merges", headers=user).json()["queue"]] == [aid]
    assert _entry_briefings(orch) == [""]
    assert get(orch, aid)["briefing"] == BIG  # the assignment keeps it: a fix worker is briefed from there


def _old_entry() -> tuple[str, tuple[Any, ...]]:
    """A merge entry a hub before migration 0034 made: its copy of the briefing."""
    return ("INSERT INTO merge_entries (id, seq, assignment_id, repo, target, branch, issue, method, state, attempt, "
            "conflict_fixes, red_fixes, briefing, created_by, created_at, updated_at) VALUES ('m0000001', 1, "
            "'0000000a', 'api', 'main', 'issue-1', 1, 'squash', 'merged', 1, 0, 0, ?, 'hub', 0, 0)", (BIG,))


def test_migration_0034_clears_the_briefing_copies_of_merge_entries(tmp_path: Path) -> None:
    store = SQLiteStore(sqlite_database_before(tmp_path / "coord.db", "0034", [_old_row(), _old_entry()]))
    store.open()
    try:
        rows = store.read_sync(lambda tx: tx.ex.all("SELECT id, briefing FROM merge_entries"))
    finally:
        store.close()
    assert [(r["id"], r["briefing"]) for r in rows] == [("m0000001", "")]


@pytest.mark.postgres
def test_migration_0034_clears_the_briefing_copies_of_merge_entries_on_postgres() -> None:
    from coordhub.store.postgres import PostgresStore

    with pg_database_before("0034", [_old_row(), _old_entry()]) as url:
        store = PostgresStore(url)
        store.open()
        try:
            rows = store.read_sync(lambda tx: tx.ex.all("SELECT id, briefing FROM merge_entries"))
        finally:
            store.close()
    assert [(r["id"], r["briefing"]) for r in rows] == [("m0000001", "")]


def test_migration_0033_counts_the_bytes_of_existing_briefings(tmp_path: Path) -> None:
    db = tmp_path / "coord.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    for name, sql in migrate.migration_scripts("sqlite"):
        if name < "0033":
            conn.executescript(sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (name,))
    conn.execute(*_old_row())
    conn.close()
    store = SQLiteStore(db)
    store.open()
    try:
        rows = store.read_sync(lambda tx: tx.assignments.find())
    finally:
        store.close()
    assert [(r["id"], r["briefing_bytes"]) for r in rows] == [("0000000a", 60_007)]


@pytest.mark.postgres
def test_migration_0033_counts_the_bytes_of_existing_briefings_on_postgres() -> None:
    from coordhub.store.postgres import PostgresStore

    with pg_database_before("0033", [_old_row()]) as url:
        store = PostgresStore(url)
        store.open()
        try:
            rows = store.read_sync(lambda tx: tx.assignments.find())
        finally:
            store.close()
    assert [(r["id"], r["briefing_bytes"]) for r in rows] == [("0000000a", 60_007)]


def _old_row() -> tuple[str, tuple[Any, ...]]:
    """An assignment a hub before migration 0033 made (no ``briefing_bytes``)."""
    return ("INSERT INTO assignments (id, seq, state, attempt, repo, issue, labels, requires, model, model_source, "
            "briefing, files_likely, branch, created_by, created_at, queued_at, updated_at) "
            "VALUES (?, 1, 'queued', 0, 'api', 1, '[]', '[]', 'sonnet', 'default', ?, '[]', 'issue-1', 'admin', "
            "0, 0, 0)", ("0000000a", BIG))
