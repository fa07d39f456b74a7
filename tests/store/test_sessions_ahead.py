"""Session rows read ahead for a PostgreSQL write batch (``store/pgahead.py``, issue 15).

The rows follow the batch's own writes without asking the database again; these
tests hold the pieces that rule depends on: the sender's upsert as mirrored in
Python (``tables.sessions.acted``) gives the row the database stores, on both
backends, and every statement of ours that writes ``sessions`` is recognised.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from coordhub.store import Store
from coordhub.store.pgahead import MAX_AHEAD, SessionsAhead, writes_sessions
from coordhub.store.tables.sessions import ACT, acted

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "coordhub"


def _row(store: Store, session_id: str) -> dict[str, object]:
    row = store.read_sync(lambda tx: tx.ex.one("SELECT * FROM sessions WHERE session_key = lower(?)", (session_id,)))
    assert row is not None
    return dict(row)


@pytest.mark.parametrize("known_before", [False, True])
def test_the_upsert_mirrored_in_python_gives_the_row_the_database_stores(store: Store, known_before: bool) -> None:
    """A session addressed only (no ``known_since``) or already known acts at a later time: ``acted`` of the
    row before, at that time, equals the row after, column for column."""
    store.write_sync(lambda tx: tx.sessions.address("M/Main", 100.0))
    if known_before:
        store.write_sync(lambda tx: tx.sessions.act("m/main", 150.0))
    before = _row(store, "M/Main")
    store.write_sync(lambda tx: tx.ex.one(ACT, ("m/MAIN", "m/MAIN", 200.0, 200.0, 200.0)))
    assert acted(before, 200.0) == _row(store, "M/Main")


def test_every_statement_that_writes_sessions_is_recognised() -> None:
    """Each SQL text in the code that writes the table (found by a looser search than the rule's) is one the
    rule sees, so no write of ours leaves a row read ahead stale; reads are not taken for writes."""
    loose = re.compile(r"(INSERT INTO|UPDATE|DELETE FROM)\s+sessions\b")
    found = []
    for path in SRC.rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            for match in loose.finditer(line):
                found.append(line[match.start():])
    assert len(found) >= 10, found  # the sessions table's own, conversations', retention's
    assert all(writes_sessions(text) for text in found), [t for t in found if not writes_sessions(t)]
    assert writes_sessions(ACT)
    for read in ("SELECT * FROM sessions WHERE session_key = lower(?)",
                 "SELECT 1 FROM sessions s WHERE s.last_seen >= ?", "UPDATE leases SET holder_sessions = ?"):
        assert not writes_sessions(read)


def test_only_well_formed_ids_are_read_ahead_each_once_and_bounded() -> None:
    """Spellings the core would refuse are not read (their lookups are asked as before); duplicates are read
    once; at most MAX_AHEAD per batch."""
    quoted = SessionsAhead.query(["A/x", "a/X", "A/x", "bad id", "x'; DROP TABLE sessions; --", "é/x"],
                                 lambda s: f"'{s}'")
    assert quoted is not None
    text = quoted.decode()
    assert "'A/x'" in text and "'a/X'" in text and text.count("'A/x'") == 1
    assert "bad id" not in text and "DROP" not in text and "é" not in text
    assert SessionsAhead.query(["no good", ""], lambda s: f"'{s}'") is None
    many = SessionsAhead.query([f"S/{n}" for n in range(MAX_AHEAD + 50)], lambda s: f"'{s}'")
    assert many is not None and many.decode().count("'S/") == MAX_AHEAD
