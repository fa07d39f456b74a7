"""SQLite runs a write's ``RETURNING`` as the write and a read (``coordhub.store.base.returning``), and takes a
rowid key from the INSERT itself: the answers must be what the ``RETURNING`` form gives."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coordhub.store.base import NEXT_VALUE, READ_BACKS
from coordhub.store.sqlite import SQLiteStore
from coordhub.store.tables.sessions import ACT
from coordhub.store.tx import Tx


def _traced(store: SQLiteStore) -> list[str]:
    """Every statement the store's writer runs from now on."""
    seen: list[str] = []
    store.write_sync(lambda tx: tx.ex.conn.set_trace_callback(seen.append))
    return seen


def test_registered_writes_run_without_returning_and_answer_as_returning_would(tmp_path: Path) -> None:
    assert {ACT, NEXT_VALUE} <= READ_BACKS.keys()
    ours, theirs = SQLiteStore(tmp_path / "ours.db"), SQLiteStore(tmp_path / "theirs.db")
    ours.open()
    theirs.open()
    theirs.close()
    raw = sqlite3.connect(tmp_path / "theirs.db", isolation_level=None)
    raw.row_factory = sqlite3.Row
    try:
        seen = _traced(ours)
        # first contact, acting again later, another spelling of the same session once paused, another session
        steps = [("A/claude-main", 5.0), ("A/claude-main", 7.5), ("a/CLAUDE-main", 9.0), ("B/x", 10.0)]
        pause = "UPDATE sessions SET paused_at = 8.0, paused_scope = 'p' WHERE session_key = 'a/claude-main'"
        got, expected = [], []
        for session, now in steps:
            got.append(ours.write_sync(lambda tx, s=session, n=now: tx.sessions.act(s, n)))
            expected.append(dict(raw.execute(ACT, (session, session, now, now, now)).fetchone()))
            if now == 7.5:
                ours.write_sync(lambda tx: tx.ex.execute(pause))
                raw.execute(pause)
        assert got == expected
        assert got[2]["session_id"] == "A/claude-main" and got[2]["paused_at"] == 8.0
        assert [ours.write_sync(lambda tx: tx.leases.next_fence()) for _ in range(3)] == [1, 2, 3]
        assert [raw.execute(NEXT_VALUE, ("fence",)).fetchone()[0] for _ in range(3)] == [1, 2, 3]
        with pytest.raises(LookupError):
            ours.write_sync(lambda tx: tx.ex.next_value("no-such-counter"))
        assert seen and not any("RETURNING" in sql for sql in seen)
    finally:
        raw.close()
        ours.close()


def test_a_rowid_key_is_the_inserted_rows(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "h.db")
    store.open()
    try:
        seen = _traced(store)

        def append(tx: Tx) -> list[int]:
            return [tx.events.append({"kind": k, "session_id": "s", "project_key": None, "subject_id": None,
                                      "payload": "{}", "created_at": 1.0}) for k in "abc"]

        ids = store.write_sync(append)
        rows = store.read_sync(lambda tx: tx.events.after(0))
        assert ids == [r["id"] for r in rows] and [r["kind"] for r in rows] == ["a", "b", "c"]
        assert not any("RETURNING" in sql for sql in seen)
        # a key that is not the rowid is read back with RETURNING (the hub has none such today: a table made here)
        store.write_sync(lambda tx: tx.ex.execute("CREATE TABLE numbered (k INTEGER UNIQUE, v TEXT)"))
        assert store.write_sync(lambda tx: tx.ex.insert_numbered("numbered", {"k": 41, "v": "x"}, "k")) == 41
        assert any("RETURNING k" in sql for sql in seen)
    finally:
        store.close()
