"""Migration 0003 on a database written by an older hub, on both backends.

Older hubs compared session ids exactly, so one session could be stored under
several spellings. After 0003 it has one row (the first spelling seen, under a
unique case-folded key) and every reference uses that spelling.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordhub.store import Store
from coordhub.store.sqlite import SQLiteStore
from tests.conftest import pg_database_before, sqlite_database_before

FIRST, LATER, OTHER = "DESKTOP-0O8A1RL/claude-main", "desktop-0o8a1rl/claude-main", "HOWARD-HOME/claude-main"

LEGACY = [
    ("INSERT INTO sessions (session_id, first_seen, last_seen) VALUES (?, ?, ?)", (FIRST, 10.0, 20.0)),
    ("INSERT INTO sessions (session_id, first_seen, last_seen) VALUES (?, ?, ?)", (LATER, 15.0, 30.0)),
    ("INSERT INTO sessions (session_id, first_seen, last_seen) VALUES (?, ?, ?)", (OTHER, 5.0, 5.0)),
    ("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?)", ("t1", LATER, "h1", 0, 15.0, None)),
    ("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?)", ("t2", "laptop/x", "h2", 0, 16.0, None)),
    ("INSERT INTO messages (id, from_session, to_session, subject, body, importance, requires_ack, created_at) "
     "VALUES (?, ?, ?, 's', 'b', 'normal', 0, 1.0)", ("m1", OTHER, LATER)),
    ("INSERT INTO messages (id, from_session, to_session, subject, body, importance, requires_ack, created_at) "
     "VALUES (?, ?, ?, 's', 'b', 'normal', 0, 2.0)", ("m2", OTHER, None)),
    ("INSERT INTO receipts (session_id, message_seq) VALUES (?, 1)", (LATER,)),
    ("INSERT INTO receipts (session_id, message_seq, read_at) VALUES (?, 2, 3.0)", (FIRST,)),
    ("INSERT INTO receipts (session_id, message_seq, read_at) VALUES (?, 2, 4.0)", (LATER,)),  # same broadcast
    ("INSERT INTO leases (id, fence, project_key, resource, kind, session_id, ttl_hours, acquired_at, state, "
     "updated_at) VALUES ('l1', 1, 'p', 'x', 'path', ?, 2, 1, 'active', 1)", (LATER,)),
    ("INSERT INTO idempotency VALUES (?, 'k', 'h', 200, '{}', 1.0)", (FIRST,)),
    ("INSERT INTO idempotency VALUES (?, 'k', 'h', 200, '{}', 2.0)", (LATER,)),
]


def _sqlite_legacy(path: Path) -> Store:
    return SQLiteStore(sqlite_database_before(path, "0003", LEGACY))


@pytest.fixture
def legacy_pg(pg_url: str) -> Iterator[str]:
    """A scratch PostgreSQL database at schema 0002 holding LEGACY (``pg_url``: the server is required as usual)."""
    with pg_database_before("0003", LEGACY) as url:
        yield url


def _check(store: Store) -> None:
    def dump(tx: Any) -> dict[str, list[dict[str, Any]]]:
        return {t: tx.ex.all(f"SELECT * FROM {t}") for t in ("sessions", "tokens", "receipts", "leases",
                                                              "messages", "idempotency")}

    store.open()
    try:
        got = store.read_sync(dump)
        sessions = {r["session_id"]: r for r in got["sessions"]}
        assert set(sessions) == {FIRST, OTHER, "laptop/x"}
        merged = sessions[FIRST]
        assert merged["session_key"] == LATER and (merged["first_seen"], merged["last_seen"]) == (10.0, 30.0)
        assert merged["known_since"] == 10.0 and sessions["laptop/x"]["known_since"] == 16.0
        assert {r["name"] for r in got["tokens"]} == {FIRST, "laptop/x"}
        assert {r["session_id"] for r in got["leases"]} == {FIRST}
        assert [r["to_session"] for r in sorted(got["messages"], key=lambda r: r["seq"])] == [FIRST, None]
        assert sorted((r["session_id"], r["message_seq"], r["read_at"]) for r in got["receipts"]) == \
            [(FIRST, 1, None), (FIRST, 2, 3.0)]  # the canonical spelling's receipt won
        assert [r["scope"] for r in got["idempotency"]] == [FIRST]
        # and the unique folded key holds from now on
        assert store.write_sync(lambda tx: tx.sessions.touch("Desktop-0o8a1rl/Claude-Main", 50.0)) == FIRST
    finally:
        store.close()


def test_sqlite_spellings_are_merged(tmp_path: Path) -> None:
    _check(_sqlite_legacy(tmp_path / "coord.db"))


@pytest.mark.postgres
def test_postgres_spellings_are_merged(legacy_pg: str) -> None:
    from coordhub.store.postgres import PostgresStore

    _check(PostgresStore(legacy_pg))
