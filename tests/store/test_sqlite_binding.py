"""How the SQLite backend has ``sqlite3`` bind ``None`` and ``bool`` (issue 15: without the adaptation protocol)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from coordhub.store.sqlite import SQLiteStore


def test_none_and_bool_are_found_in_the_adapter_registry() -> None:
    # as importing the SQLite backend left it (store/sqlite.bind_plainly)
    adapters = sqlite3.adapters  # type: ignore[attr-defined]  # the module's registry: (type, protocol) -> adapter
    none = adapters[(type(None), sqlite3.PrepareProtocol)]
    assert none(None) is None
    assert adapters[(bool, sqlite3.PrepareProtocol)] is int


def test_none_binds_as_null_and_bool_as_integer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "coord.db")
    store.open()
    try:
        def unit(tx: object) -> list[dict[str, object]]:
            ex = tx.ex  # type: ignore[attr-defined]
            ex.execute("CREATE TEMP TABLE bound (a, b, c, d, e)")
            ex.execute("INSERT INTO bound VALUES (?, ?, ?, ?, ?)", (None, True, False, 7, "x"))
            rows: list[dict[str, object]] = ex.all(
                "SELECT a, b, c, d, e, typeof(a) AS ta, typeof(b) AS tb, typeof(c) AS tc FROM bound")
            ex.execute("DROP TABLE temp.bound")
            return rows

        rows = store.write_sync(unit)
    finally:
        store.close()
    assert rows == [{"a": None, "b": 1, "c": 0, "d": 7, "e": "x", "ta": "null", "tb": "integer", "tc": "integer"}]
    assert type(rows[0]["b"]) is int
