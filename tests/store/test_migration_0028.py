"""Migration 0028 folds the project keys an older hub stored as given (coordhub.core.projects), on both backends.

Before it, ``GuruRMM`` and ``gururmm`` were two projects: a lease under one was
invisible to a check under the other. Only ASCII letters fold (``É`` stays),
as :func:`coordhub.core.projects.fold` folds them; components that fold into
one keep the last updated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordhub.core import projects
from coordhub.store import Store
from coordhub.store.postgres import PostgresStore
from coordhub.store.sqlite import SQLiteStore
from tests.conftest import pg_database_before, sqlite_database_before

LEGACY = [
    ("INSERT INTO leases (id, fence, project_key, resource, kind, session_id, ttl_hours, acquired_at, expires_at, "
     "state, updated_at, scope) VALUES ('l1', 1, 'GuruRMM', 'src/', 'path', 'A/x', 2, 1.0, 9e12, 'active', 1.0, "
     "'src')", ()),
    ("INSERT INTO messages (id, from_session, project_key, subject, body, importance, requires_ack, created_at) "
     "VALUES ('m1', 'A/x', 'ÉTÉ-Docs', 's', 'b', 'normal', 0, 1.0)", ()),
    ("INSERT INTO todos (id, text, project_key, auto, status, created_by, created_at, updated_at) "
     "VALUES ('t1', 'x', 'GuruRMM', 0, 'pending', 'A/x', 1.0, 1.0)", ()),
    ("INSERT INTO workflows (id, project_key, name, status, created_by, created_at, updated_at) "
     "VALUES ('w1', 'GuruRMM', 'n', 'planning', 'A/x', 1.0, 1.0)", ()),
    ("INSERT INTO work_items (id, workflow_id, project_key, title, status, priority, created_by, updated_by, "
     "created_at, updated_at) VALUES ('i1', 'w1', 'GuruRMM', 't', 'pending', 0, 'A/x', 'A/x', 1.0, 1.0)", ()),
    ("INSERT INTO events (kind, project_key, payload, created_at) VALUES ('lease.granted', 'GuruRMM', '{}', 1.0)",
     ()),
    # one component under three spellings: the last updated (state "deployed") stays, under the folded key
    ("INSERT INTO components (project_key, component, state, updated_by, created_at, updated_at) "
     "VALUES ('GuruRMM', 'server', 'building', 'A/x', 1.0, 1.0)", ()),
    ("INSERT INTO components (project_key, component, state, updated_by, created_at, updated_at) "
     "VALUES ('GURURMM', 'server', 'deployed', 'A/x', 3.0, 3.0)", ()),
    ("INSERT INTO components (project_key, component, state, updated_by, created_at, updated_at) "
     "VALUES ('gururmm', 'server', 'built', 'A/x', 2.0, 2.0)", ()),
    ("INSERT INTO components (project_key, component, state, updated_by, created_at, updated_at) "
     "VALUES ('GuruRMM', 'agent', 'built', 'A/x', 1.0, 1.0)", ()),
]


def _after(store: Store) -> dict[str, Any]:
    store.open()
    try:
        def read(tx: Any) -> dict[str, Any]:
            keys = {t: [r["project_key"] for r in tx.ex.all(f"SELECT project_key FROM {t}")]
                    for t in ("leases", "messages", "todos", "workflows", "work_items", "events")}
            keys["components"] = sorted((r["project_key"], r["component"], r["state"])
                                        for r in tx.ex.all("SELECT * FROM components"))
            return keys
        return dict(store.read_sync(read))
    finally:
        store.close()


EXPECTED = {"leases": ["gururmm"], "messages": ["ÉtÉ-docs"], "todos": ["gururmm"], "workflows": ["gururmm"],
            "work_items": ["gururmm"], "events": ["gururmm"],
            "components": [("gururmm", "agent", "built"), ("gururmm", "server", "deployed")]}


def test_the_migration_folds_as_the_hub_does() -> None:
    assert projects.fold("ÉTÉ-Docs") == EXPECTED["messages"][0]


def test_sqlite(tmp_path: Path) -> None:
    store = SQLiteStore(sqlite_database_before(tmp_path / "coord.db", "0028", LEGACY))
    assert _after(store) == EXPECTED


@pytest.fixture
def legacy_pg(pg_url: str) -> Iterator[str]:
    with pg_database_before("0028", LEGACY) as url:
        yield url


@pytest.mark.postgres
def test_postgres(legacy_pg: str) -> None:
    store: Any = PostgresStore(legacy_pg)
    assert _after(store) == EXPECTED
