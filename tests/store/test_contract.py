"""The store contract, run against every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from coordhub.errors import NotFound, Unavailable
from coordhub.store import Store
from coordhub.store.tx import Tx


def _event(tx: Tx, kind: str) -> int:
    return tx.events.append({"kind": kind, "session_id": "s", "project_key": None, "subject_id": None,
                             "payload": "{}", "created_at": 1.0})


def test_write_is_atomic_and_failure_changes_nothing(store: Store) -> None:
    def ok(tx: Tx) -> int:
        return _event(tx, "a")

    def fails(tx: Tx) -> None:
        _event(tx, "b")
        raise NotFound("boom")

    store.write_sync(ok)
    with pytest.raises(NotFound):
        store.write_sync(fails)
    kinds = store.read_sync(lambda tx: [e["kind"] for e in tx.events.after(0)])
    assert kinds == ["a"]


def test_failing_unit_in_a_batch_rolls_back_alone(store: Store) -> None:
    """Units committed in one batch are isolated by savepoints."""
    gate = threading.Event()
    store.submit_write(lambda tx: gate.wait(5))  # hold the writer so the next units batch together
    futures = []
    for i in range(20):
        if i % 3 == 0:
            def bad(tx: Tx, i: int = i) -> None:
                _event(tx, f"bad{i}")
                raise NotFound("no")
            futures.append(store.submit_write(bad))
        else:
            futures.append(store.submit_write(lambda tx, i=i: _event(tx, f"ok{i}")))
    gate.set()
    results = []
    for f in futures:
        try:
            results.append(f.result(10))
        except NotFound:
            results.append(None)
    kinds = store.read_sync(lambda tx: [e["kind"] for e in tx.events.after(0)])
    assert kinds == [f"ok{i}" for i in range(20) if i % 3]
    assert all((r is None) == (i % 3 == 0) for i, r in enumerate(results))


def _insert_meta(tx: Tx, key: str) -> None:
    """A plain INSERT: a second one of the same key is the database's unique violation, not ours."""
    tx.ex.execute("INSERT INTO hub_meta (key, value) VALUES (?, 'v')", (key,))


def _batch(store: Store, units: list[Callable[[Tx], object]]) -> list[object]:
    """Run ``units`` as one write batch; each unit's result, or its exception's kind ("duplicate" for the
    database's unique violation on either backend, else the class name)."""
    gate = threading.Event()
    store.submit_write(lambda tx: gate.wait(5))  # hold the writer so the next units batch together
    futures = [store.submit_write(u) for u in units]
    gate.set()
    out: list[object] = []
    for f in futures:
        try:
            out.append(f.result(20))
        except Exception as exc:
            duplicate = isinstance(exc, (sqlite3.IntegrityError, psycopg.errors.UniqueViolation))
            out.append("duplicate" if duplicate else type(exc).__name__)
    return out


def test_database_errors_in_a_batch_roll_back_their_unit_alone_and_the_next_batch_starts_clean(store: Store) -> None:
    """A unit whose first statement the database refuses (on PostgreSQL it travels in one pipeline with the held-
    back RELEASE of the unit before and its own SAVEPOINT), one that fails before any SQL, and a last unit that
    fails (its rollback travels with COMMIT) each lose only themselves; the batch after is clean."""
    def dup_first(tx: Tx) -> None:
        _insert_meta(tx, "dup")

    def no_sql(tx: Tx) -> None:
        raise NotFound("before any SQL")

    def write_then_dup(tx: Tx) -> None:
        _event(tx, "lost")
        _insert_meta(tx, "dup")

    units: list[Callable[[Tx], object]] = [
        lambda tx: _insert_meta(tx, "dup"), dup_first, lambda tx: _event(tx, "e1"), no_sql, no_sql,
        lambda tx: _event(tx, "e2"), write_then_dup, lambda tx: tx.meta.get("dup"), dup_first]
    got = _batch(store, units)
    assert got[0] is None and got[2] == 1 and got[5] == 2 and got[7] == "v", got
    assert [got[i] for i in (1, 3, 4, 6, 8)] == ["duplicate", "NotFound", "NotFound", "duplicate", "duplicate"], got
    assert store.read_sync(lambda tx: [e["kind"] for e in tx.events.after(0)]) == ["e1", "e2"]
    # The next batches: a lone write, then a batch, on the same connection, with nothing left over.
    assert store.write_sync(lambda tx: _event(tx, "e3")) > 0
    again = _batch(store, [lambda tx: _event(tx, "e4"), dup_first, lambda tx: _event(tx, "e5")])
    assert again[1] == "duplicate" and isinstance(again[0], int) and isinstance(again[2], int)
    assert store.read_sync(lambda tx: [e["kind"] for e in tx.events.after(0)]) == ["e1", "e2", "e3", "e4", "e5"]


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_connection_lost_mid_batch_loses_that_batch_and_the_next_starts_clean(store: Store) -> None:
    """The writer's connection dies while a unit's statement is in flight (PostgreSQL: pipelined with the
    held-back SAVEPOINT; only PostgreSQL lets a statement end its own connection): the whole batch is lost as
    Unavailable, and the next batch commits on a new connection."""

    def cut(tx: Tx) -> None:
        tx.ex.one("SELECT pg_terminate_backend(pg_backend_pid())")

    got = _batch(store, [lambda tx: _event(tx, "gone1"), cut, lambda tx: _event(tx, "gone2")])
    assert got == ["Unavailable"] * 3, got
    again: list[object] = ["Unavailable"] * 3
    deadline = time.monotonic() + 60  # the writer reconnects after its backoff; until then it answers Unavailable
    while again == ["Unavailable"] * 3 and time.monotonic() < deadline:
        time.sleep(0.2)
        again = _batch(store, [lambda tx: _event(tx, "a"), lambda tx: _insert_meta(tx, "x"),
                               lambda tx: _event(tx, "b")])
    assert isinstance(again[0], int) and again[1] is None and isinstance(again[2], int), again
    assert store.read_sync(lambda tx: [e["kind"] for e in tx.events.after(0)]) == ["a", "b"]


def test_a_halt_set_or_undone_inside_a_batch_is_seen_by_the_units_after_it(store: Store) -> None:
    """The standing halts are read once per batch (one round trip less per unit): a unit that sets a halt,
    or sets one and is rolled back, must still be seen exactly so by the units after it in the same batch."""
    halt = {"scope": "*", "halted_by": "admin", "reason": "r", "halted_at": 1.0, "by_admin": 1}

    def sees(tx: Tx) -> int:
        return len(tx.halts.all())

    def sets_and_fails(tx: Tx) -> None:
        tx.halts.put(dict(halt))
        raise NotFound("rolled back")

    def sets_reads_and_fails(tx: Tx) -> None:  # what it read holds its own halt, which its rollback undoes
        tx.halts.put(dict(halt))
        assert sees(tx) == 1
        raise NotFound("rolled back")

    def fails(tx: Tx) -> None:  # read before it, the standing halts stay as they were (kept, not asked again)
        raise NotFound("refused")

    gate = threading.Event()
    store.submit_write(lambda tx: gate.wait(5))  # hold the writer so the next units batch together
    units: list[Callable[[Tx], object]] = [sees, sets_and_fails, sees, sets_reads_and_fails, sees, fails, sees,
                                           lambda tx: tx.halts.put(dict(halt)), sees, fails, sees,
                                           lambda tx: tx.halts.clear("*"), sees]
    futures = [store.submit_write(u) for u in units]
    gate.set()
    seen = []
    for f in futures:
        try:
            seen.append(f.result(10))
        except NotFound:
            seen.append("failed")
    assert seen[:7] == [0, "failed", 0, "failed", 0, "failed", 0], seen
    assert [seen[8], seen[9], seen[10], seen[12]] == [1, "failed", 1, 0], seen
    assert store.read_sync(lambda tx: tx.halts.all()) == []


def test_event_ids_strictly_increase_in_commit_order(store: Store) -> None:
    ids = [store.write_sync(lambda tx: _event(tx, "e")) for _ in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert store.read_sync(lambda tx: tx.events.last_id()) == ids[-1]


def test_parts_answers_each_query_alone_in_order(store: Store) -> None:
    """``Executor.parts`` (SQLite: one compound statement) gives each query its own rows, in the order asked,
    limits kept per query, with exactly the table's columns."""
    kinds = ["a", "b", "a", "c", "b", "a"]
    store.write_sync(lambda tx: [_event(tx, k) for k in kinds])
    columns = set(store.read_sync(lambda tx: tx.events.after(0)[0]))
    queries = [("SELECT * FROM events WHERE kind = ? ORDER BY id", ("a",)),
               ("SELECT * FROM events WHERE kind = ? ORDER BY id", ("z",)),
               ("SELECT * FROM events WHERE kind <> ? ORDER BY id LIMIT 2", ("a",)),
               ("SELECT * FROM events WHERE id > ? ORDER BY id", (4,))]
    parts = store.write_sync(lambda tx: tx.events.ex.parts(queries, "id"))
    assert [[r["kind"] for r in rows] for rows in parts] == [["a", "a", "a"], [], ["b", "c"], ["b", "a"]]
    assert all(set(r) == columns for rows in parts for r in rows)
    assert all([r["id"] for r in rows] == sorted(r["id"] for r in rows) for rows in parts)

def test_fence_counter_is_strictly_increasing_under_concurrency(store: Store) -> None:
    futures = [store.submit_write(lambda tx: tx.leases.next_fence()) for _ in range(200)]
    fences = [f.result(10) for f in futures]
    assert fences == list(range(1, 201))


def test_fence_counter_persists_across_reopen(store_factory: Callable[[], Store]) -> None:
    first = store_factory()
    assert [first.write_sync(lambda tx: tx.leases.next_fence()) for _ in range(3)] == [1, 2, 3]
    first.close()
    second = store_factory()
    assert second.write_sync(lambda tx: tx.leases.next_fence()) == 4


def test_reads_see_committed_writes(store: Store) -> None:
    store.write_sync(lambda tx: tx.sessions.touch("A/claude-main", 5.0))
    row = store.read_sync(lambda tx: tx.sessions.get("A/claude-main"))
    assert row is not None and row["first_seen"] == 5.0


def test_lookups_return_none_or_empty_when_missing(store: Store) -> None:
    assert store.read_sync(lambda tx: tx.leases.get("nope")) is None
    assert store.read_sync(lambda tx: tx.messages.unread_direct("x", 10)) == []
    assert store.read_sync(lambda tx: tx.sessions.broadcast_cursor("x")) == 0
    assert store.read_sync(lambda tx: tx.events.last_id()) == 0


def test_migrations_are_idempotent(store_factory: Callable[[], Store]) -> None:
    a = store_factory()
    a.write_sync(lambda tx: tx.sessions.touch("A", 1.0))
    a.close()
    b = store_factory()  # opening again must not re-run or fail
    assert b.read_sync(lambda tx: tx.sessions.get("A")) is not None


def test_closed_store_refuses_with_unavailable(store_factory: Callable[[], Store]) -> None:
    s = store_factory()
    s.close()
    with pytest.raises(Unavailable):
        s.write_sync(lambda tx: None)
    with pytest.raises(Unavailable):
        s.read_sync(lambda tx: None)


def test_declares_durability(store: Store) -> None:
    assert store.name in ("sqlite", "postgresql")
    assert "commit" in store.durability


def _defer_meta(tx: Tx, key: str) -> None:
    """The same INSERT as :func:`_insert_meta`, deferred: on PostgreSQL it fails only when it is sent."""
    tx.ex.defer("INSERT INTO hub_meta (key, value) VALUES (?, 'v')", (key,))


def _note(tx: Tx, kind: str) -> None:
    tx.events.append_nowait({"kind": kind, "session_id": "s", "project_key": None, "subject_id": None,
                             "payload": "{}", "created_at": 1.0})


def test_a_deferred_write_that_fails_fails_its_own_unit_alone_wherever_it_surfaces(store: Store) -> None:
    """On PostgreSQL a deferred write travels with a later statement: its own unit's (the error is raised there),
    the next unit's first one (the unit already ended: the batch runs again without it), or the COMMIT. Each
    failing unit is absent, whole; the others commit once each, their events in order; the next batch is clean."""
    def own_read_after(tx: Tx) -> object:
        _note(tx, "lost-own")
        _defer_meta(tx, "dup")
        return tx.meta.get("dup")  # on PostgreSQL the failure surfaces here, in the unit itself

    def surfaces_later(tx: Tx) -> None:
        _note(tx, "lost-later")
        _defer_meta(tx, "dup")  # on PostgreSQL the failure surfaces on the next unit's first statement

    units: list[Callable[[Tx], object]] = [
        lambda tx: (_defer_meta(tx, "dup"), _note(tx, "e0")), surfaces_later, lambda tx: tx.meta.get("dup"),
        lambda tx: _note(tx, "e2"), own_read_after, lambda tx: _note(tx, "e3"), surfaces_later, surfaces_later]
    got = _batch(store, units)
    assert got == [(None, None), "duplicate", "v", None, "duplicate", None, "duplicate", "duplicate"], got
    events = store.read_sync(lambda tx: tx.events.after(0))
    assert [e["kind"] for e in events] == ["e0", "e2", "e3"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert store.write_sync(lambda tx: _event(tx, "e4")) > events[-1]["id"]
    assert _batch(store, [lambda tx: _note(tx, "e5"), lambda tx: _note(tx, "e6")]) == [None, None]
    assert [e["kind"] for e in store.read_sync(lambda tx: tx.events.after(0))] == ["e0", "e2", "e3", "e4", "e5", "e6"]


def test_a_lone_unit_whose_deferred_write_fails_at_commit_fails_and_leaves_nothing(store: Store) -> None:
    """Alone in its batch, the unit's deferred write travels with the COMMIT: the batch (that unit) fails."""
    store.write_sync(lambda tx: _insert_meta(tx, "dup"))
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation)):
        store.write_sync(lambda tx: (_note(tx, "lost"), _defer_meta(tx, "dup")))
    assert store.read_sync(lambda tx: tx.events.after(0)) == []
    store.write_sync(lambda tx: _note(tx, "next"))
    assert [e["kind"] for e in store.read_sync(lambda tx: tx.events.after(0))] == ["next"]


def test_a_before_commit_read_the_database_refuses_after_a_failed_last_unit_loses_the_whole_batch(
        store: Store) -> None:
    """The batch's before-commit hook (``Store.set_after_commit(…, before=…)``: the event feed's read) is the
    batch's, even after its last unit failed: when the database refuses its read (PostgreSQL: with the COMMIT,
    in the failed unit's rollback's round trip), every unit of the batch fails with that error, none of their
    writes commits, no after-commit listener runs, and the next batch starts clean."""
    committed: list[int] = []
    broken = [True]

    def before(tx: Tx) -> None:
        if broken[0]:
            tx.ex.expect("SELECT * FROM no_such_table", (), lambda rows: None)

    store.set_after_commit(lambda tx: committed.append(1), before)

    def fails_last(tx: Tx) -> None:
        _event(tx, "lost-failed")
        raise NotFound("its own refusal")

    got = _batch(store, [lambda tx: _event(tx, "lost1"), lambda tx: _event(tx, "lost2"), fails_last])
    refused = ("OperationalError", "UndefinedTable")  # SQLite's word for a missing table, PostgreSQL's
    assert len(set(got)) == 1 and got[0] in refused, got
    assert committed == []
    assert store.read_sync(lambda tx: tx.events.after(0)) == []
    broken[0] = False
    again = _batch(store, [lambda tx: _event(tx, "e1"), fails_last, lambda tx: _event(tx, "e2")])
    assert isinstance(again[0], int) and again[1] == "NotFound" and isinstance(again[2], int), again
    assert [e["kind"] for e in store.read_sync(lambda tx: tx.events.after(0))] == ["e1", "e2"]
    assert committed  # the listener ran for the batch that committed
