"""SQLite gives pruned space back: incremental auto-vacuum, switched on once for a database an older hub made."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from coordhub.store.sqlite import SQLiteStore


def _auto_vacuum(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA auto_vacuum").fetchone()[0])


def test_a_new_database_is_incremental_and_an_old_one_is_converted_keeping_its_rows(tmp_path: Path) -> None:
    new = SQLiteStore(tmp_path / "new.db")
    new.open()
    new.close()
    assert _auto_vacuum(tmp_path / "new.db") == 2
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:  # what an older hub left: auto_vacuum NONE, with history
        conn.execute("CREATE TABLE keep (x TEXT)")
        conn.executemany("INSERT INTO keep VALUES (?)", [("row",)] * 100)
    assert _auto_vacuum(old) == 0
    store = SQLiteStore(old)
    store.open()
    try:
        assert store.read_sync(lambda tx: tx.ex.one("SELECT COUNT(*) AS n FROM keep"))["n"] == 100
    finally:
        store.close()
    assert _auto_vacuum(old) == 2


def test_reclaiming_after_a_delete_shrinks_the_file(tmp_path: Path) -> None:
    path = tmp_path / "coord.db"
    store = SQLiteStore(path)
    store.open()
    try:
        store.write_sync(lambda tx: [tx.ex.execute("INSERT INTO hub_meta (key, value) VALUES (?, ?)",
                                                   (f"k{n}", "x" * 2000)) for n in range(3000)])
        store.checkpoint()
        full = path.stat().st_size
        store.write_sync(lambda tx: tx.ex.execute("DELETE FROM hub_meta WHERE key LIKE 'k%'"))
        unit = store.reclaim_unit()
        rounds = 0
        while store.write_sync(unit):
            rounds += 1
            assert rounds < 1000
        store.checkpoint()
        assert rounds > 1  # a few pages per unit: the writer is never held long
        assert path.stat().st_size < full / 3
    finally:
        store.close()
