"""Migration 0021 ends every web session an older hub left: their secrets were answered to the cookie alone.

A server on another port of the host receives the dashboard's cookie (cookies
ignore ports), and before this version ``GET /api/coord/web/session`` gave it
the secret too; such a pair minted an admin token after the upgrade (found by
a review). The tokens themselves stay.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordhub.store import Store
from coordhub.store.postgres import PostgresStore
from coordhub.store.sqlite import SQLiteStore
from tests.conftest import pg_database_before, sqlite_database_before

LEGACY = [
    ("INSERT INTO tokens (id, name, token_hash, is_admin, created_at) VALUES ('t1', 'admin', 'h1', 1, 1.0)", ()),
    ("INSERT INTO web_sessions VALUES ('c1', 't1', 'secret-read-with-the-cookie', 1.0, 9e12)", ()),
]


def _left(store: Store) -> dict[str, int]:
    store.open()
    try:
        return dict(store.read_sync(lambda tx: {t: int(tx.ex.one(f"SELECT COUNT(*) AS n FROM {t}")["n"])
                                                for t in ("web_sessions", "tokens")}))
    finally:
        store.close()


def test_sqlite(tmp_path: Path) -> None:
    store = SQLiteStore(sqlite_database_before(tmp_path / "coord.db", "0021", LEGACY))
    assert _left(store) == {"web_sessions": 0, "tokens": 1}


@pytest.fixture
def legacy_pg(pg_url: str) -> Iterator[str]:
    with pg_database_before("0021", LEGACY) as url:
        yield url


@pytest.mark.postgres
def test_postgres(legacy_pg: str) -> None:
    store: Any = PostgresStore(legacy_pg)
    assert _left(store) == {"web_sessions": 0, "tokens": 1}
