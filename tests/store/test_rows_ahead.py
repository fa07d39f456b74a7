"""Rows read ahead for a PostgreSQL write batch (``store/pgahead.py``, issue 15).

The rows follow the batch's own writes without asking the database again; these
tests hold the pieces that rule depends on: the sender's upsert as mirrored in
Python (``tables.sessions.acted``) gives the row the database stores, on both
backends, and every statement of ours that writes a table read ahead is
recognised, with no more latitude than its SQL says.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from coordhub.clock import ManualClock
from coordhub.core import messages
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.store import Store, open_store
from coordhub.store.base import Ahead
from coordhub.store.pgahead import MAX_AHEAD, effect, query
from coordhub.store.tables.sessions import ACT, acted
from tests.conftest import scratch_database
from tests.core.test_batched_writes import _batch

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


def test_every_statement_that_writes_a_table_read_ahead_is_recognised() -> None:
    """Each SQL text in the code that writes ``sessions`` or ``leases`` (found by a looser search than the
    rule's) is one the rule sees; only a plain ``INSERT`` counts as adding rows and only ``UPDATE … WHERE
    <key> = ?`` as changing one; reads are not taken for writes."""
    loose = re.compile(r"(INSERT INTO|UPDATE|DELETE FROM)\s+(sessions|leases)\b")
    found = []
    for path in SRC.rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            for match in loose.finditer(line):
                found.append((match.group(2), line[match.start():]))
    assert len(found) >= 12, found  # the tables' own, conversations', retention's
    assert all(table in {t for t, _ in effect(text)} for table, text in found), found
    assert effect(ACT) == (("sessions", ACT),)
    assert effect("UPDATE leases SET state = ?, updated_at = ? WHERE id = ?") == (("leases", "one row"),)
    assert effect("UPDATE sessions SET last_heartbeat = ? WHERE session_id = ?") == (("sessions", "one row"),)
    assert effect("INSERT INTO leases (id, fence) VALUES (?, ?)") == (("leases", "adds"),)
    for other in ("UPDATE sessions SET paused_at = NULL WHERE session_id = ? AND paused_at IS NOT NULL",
                  "UPDATE sessions SET incarnation = incarnation + 1 WHERE session_id = ?",
                  "UPDATE leases SET state = 'expired' WHERE state = 'active' AND expires_at <= ?",
                  "DELETE FROM leases WHERE id IN (?, ?)", "INSERT INTO sessions (session_id) VALUES (?) "
                  "ON CONFLICT (session_key) DO NOTHING", "TRUNCATE sessions",
                  "UPDATE leases SET id = ? WHERE id = ?",  # moves a row onto another key
                  "UPDATE sessions SET session_key = ? WHERE session_id = ?"):
        assert [kind for _, kind in effect(other)] == ["other"], other
    assert set(effect("TRUNCATE sessions, leases")) == {("sessions", "other"), ("leases", "other")}
    for read in ("SELECT * FROM sessions WHERE session_key = lower(?)", "SELECT * FROM leases WHERE id = ?",
                 "SELECT 1 FROM sessions s WHERE s.last_seen >= ?", "UPDATE counters SET value = value + 1"):
        assert effect(read) == ()


def test_only_well_formed_keys_are_read_ahead_each_once_and_bounded() -> None:
    """Keys the core would refuse are not read (their lookups are asked as before); duplicates are read
    once; at most MAX_AHEAD per table and batch."""
    lease = "019ad3f0-6c1e-7a4b-8f21-3c9d0e5b7a12"
    reads = dict(query(Ahead(sessions=("A/x", "a/X", "A/x", "bad id", "x'; DROP TABLE sessions; --", "é/x"),
                             leases=(lease, lease, "not-a-lease'")), lambda s: f"'{s}'"))
    sessions, leases = reads["sessions"].decode(), reads["leases"].decode()
    assert "'A/x'" in sessions and "'a/X'" in sessions and sessions.count("'A/x'") == 1
    assert "bad id" not in sessions and "DROP" not in sessions and "é" not in sessions
    assert leases.count(lease) == 1 and "not-a-lease" not in leases
    assert query(Ahead(sessions=("no good", "")), lambda s: f"'{s}'") == []
    many = dict(query(Ahead(sessions=tuple(f"S/{n}" for n in range(MAX_AHEAD + 50))), lambda s: f"'{s}'"))
    assert many["sessions"].decode().count("'S/") == MAX_AHEAD


@pytest.mark.postgres
def test_a_database_whose_lower_folds_ascii_otherwise_reads_no_session_ahead() -> None:
    """Under a Turkish collation ``lower('IAN/x')`` is ``ıan/x``: ``IAN/x`` and ``ian/x`` are two sessions
    there, which Python's fold would take for one. Such a database reads no session ahead: a send to ``ian/x``
    (addressed only) after ``IAN/x`` acted in the same batch still finds ``ian/x`` unknown."""
    options = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'tr-TR'"
    with scratch_database("coordhub_tr", options) as url:
        store = open_store(url)
        store.open()
        try:
            hub = Hub(store, ManualClock())
            a, upper = Actor("A/main"), Actor("IAN/x")
            hub.mutate_sync(a, lambda tx, now: messages.send(tx, a, to_session="ian/x", subject="hi", body="",
                                                             now=now))
            got = _batch(hub, [(upper, lambda tx, now: None),
                               (a, lambda tx, now: messages.send(tx, a, to_session="ian/x", subject="s", body="b",
                                                                 now=now))],
                         [None, Ahead(sessions=("ian/x",))])
            assert got[1]["recipient_known"] is False and got[1]["to_session"] == "ian/x", got
        finally:
            store.close()
