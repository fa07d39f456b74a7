"""Migration 0030 rewrites thread ids an older hub stored in another spelling of a UUID, on both backends.

Sends and thread reads now name a thread that spells a message id in the
lower-case 36-character form (:func:`coordhub.ids.canonical`). A thread stored
before under ``019AD3F0-…``, ``{…}``, ``urn:uuid:…`` or 32 hex digits would no
longer be found by its message's id; after the migration it is. Free thread
names (``bd-12``, a 31-digit hex string, a UUID with text around it) stay.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordhub import ids
from coordhub.store import Store
from coordhub.store.postgres import PostgresStore
from coordhub.store.sqlite import SQLiteStore
from tests.conftest import pg_database_before, sqlite_database_before

UUID = "019ad3f0-6c1e-7a2b-9c3d-4e5f60718293"
STORED = {
    "m1": UUID.upper(),
    "m2": "{" + UUID.upper() + "}",
    "m3": "urn:uuid:" + UUID,
    "m4": UUID.replace("-", "").upper(),
    "m5": UUID,
    "m6": "bd-12",
    "m7": UUID.replace("-", "")[:31],
    "m8": "re: " + UUID.upper(),
    "m9": None,
    "m10": "URN:UUID:" + UUID.upper(),
    "m11": "urn:uuid:" + UUID.replace("-", ""),
    "m12": "urn:uuid:{" + UUID + "}",
    "m13": "{" + UUID.replace("-", "") + "}",
    "m14": UUID.replace("-", "", 1),
    "m15": "0x" + UUID.replace("-", "")[:30],
    "m16": "{" + UUID,
}


def _legacy() -> list[tuple[str, tuple[Any, ...]]]:
    return [("INSERT INTO messages (id, from_session, subject, body, importance, requires_ack, created_at, thread_id) "
             "VALUES (?, 'A/x', 's', 'b', 'normal', 0, 1.0, ?)", (mid, thread)) for mid, thread in STORED.items()]


EXPECTED = {mid: (ids.canonical(t) if t is not None else None) for mid, t in STORED.items()}


def _threads(store: Store) -> dict[str, Any]:
    store.open()
    try:
        return dict(store.read_sync(lambda tx: {r["id"]: r["thread_id"]
                                                for r in tx.ex.all("SELECT id, thread_id FROM messages")}))
    finally:
        store.close()


def test_the_migration_spells_threads_as_the_hub_does() -> None:
    spelt = {"m1", "m2", "m3", "m4", "m5", "m10", "m11", "m12"}
    assert EXPECTED == {mid: UUID if mid in spelt else thread for mid, thread in STORED.items()}


def test_sqlite(tmp_path: Path) -> None:
    store = SQLiteStore(sqlite_database_before(tmp_path / "coord.db", "0030", _legacy()))
    assert _threads(store) == EXPECTED


@pytest.fixture
def legacy_pg(pg_url: str) -> Iterator[str]:
    with pg_database_before("0030", _legacy()) as url:
        yield url


@pytest.mark.postgres
def test_postgres(legacy_pg: str) -> None:
    store: Any = PostgresStore(legacy_pg)
    assert _threads(store) == EXPECTED
