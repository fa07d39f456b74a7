"""The store contract, run against every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable

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


def test_a_halt_set_or_undone_inside_a_batch_is_seen_by_the_units_after_it(store: Store) -> None:
    """The standing halts are read once per batch (one round trip less per unit): a unit that sets a halt,
    or sets one and is rolled back, must still be seen exactly so by the units after it in the same batch."""
    halt = {"scope": "*", "halted_by": "admin", "reason": "r", "halted_at": 1.0, "by_admin": 1}

    def sees(tx: Tx) -> int:
        return len(tx.halts.all())

    def sets_and_fails(tx: Tx) -> None:
        tx.halts.put(dict(halt))
        raise NotFound("rolled back")

    gate = threading.Event()
    store.submit_write(lambda tx: gate.wait(5))  # hold the writer so the next units batch together
    units: list[Callable[[Tx], object]] = [sees, sets_and_fails, sees, lambda tx: tx.halts.put(dict(halt)), sees,
                                           lambda tx: tx.halts.clear("*"), sees]
    futures = [store.submit_write(u) for u in units]
    gate.set()
    seen = []
    for f in futures:
        try:
            seen.append(f.result(10))
        except NotFound:
            seen.append("failed")
    assert [seen[0], seen[1], seen[2], seen[4], seen[6]] == [0, "failed", 0, 1, 0]
    assert store.read_sync(lambda tx: tx.halts.all()) == []


def test_event_ids_strictly_increase_in_commit_order(store: Store) -> None:
    ids = [store.write_sync(lambda tx: _event(tx, "e")) for _ in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert store.read_sync(lambda tx: tx.events.last_id()) == ids[-1]


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
    assert store.read_sync(lambda tx: tx.messages.unread_direct("x", 0, 10)) == []
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
