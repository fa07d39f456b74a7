"""A batch begun in the round trip of the last one's COMMIT (issue 15: PostgreSQL round trips per batch).

When units queue while a batch runs (``CHAIN_UNITS`` of them; one here), the PostgreSQL writer sends the next
batch's ``BEGIN``, lock, standing halts, counters and reads ahead after the
``COMMIT`` in one round trip (``_Connection.commit_and_begin``). The lock is
only tried there: the server answers a round trip whole, so waiting for a lock
another hub holds would hold back the committed batch's answer. These tests
hold what that must not change: a batch's answer is not delayed by a lock held
elsewhere, the next batch then begins as before, a unit lost at the COMMIT
leaves the batch taken after it whole, and what a batch wrote is what the next
one reads. (``tests/bench/test_round_trips.py`` counts the round trip saved.)
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any

import psycopg
import pytest

from coordhub.store import Store, writer
from coordhub.store.postgres import _WRITER_LOCK


@pytest.fixture(autouse=True)
def _chain_from_one_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lone unit queued at a COMMIT begins in its round trip (the writer waits for CHAIN_UNITS of them)."""
    monkeypatch.setattr(writer, "CHAIN_UNITS", 1)


def _blocked(store: Store) -> tuple[threading.Event, threading.Event, Future[Any]]:
    """A unit that holds the writer until its gate opens; (gate, running, its future)."""
    gate, running = threading.Event(), threading.Event()

    def unit(tx: Any) -> str:
        running.set()
        gate.wait(10)
        return "blocker"

    future = store.submit_write(unit)
    assert running.wait(10)
    return gate, running, future


def _put(key: str, value: str) -> Any:
    def unit(tx: Any) -> str:
        tx.meta.put(key, value)
        return value
    return unit


@pytest.mark.postgres
def test_a_lock_held_elsewhere_delays_the_next_batch_not_the_answer_of_the_committed_one(pg_url: str) -> None:
    """Another hub waits for the writer's lock while a batch runs and units queue behind it: the batch's
    COMMIT hands the lock over, so the next batch cannot begin in its round trip. The committed batch is
    answered at once; the next one waits for the other hub and then runs, reading what it committed."""
    from coordhub.store import open_store

    store = open_store(pg_url)
    store.open()
    other = psycopg.connect(pg_url, autocommit=False)
    try:
        gate, _, blocker = _blocked(store)
        got_lock = threading.Event()

        def other_hub() -> None:
            other.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITER_LOCK,))  # waits for the writer's batch
            got_lock.set()
            other.execute("INSERT INTO hub_meta (key, value) VALUES ('chain-other', 'x') "
                          "ON CONFLICT (key) DO UPDATE SET value = excluded.value")

        waiter = threading.Thread(target=other_hub)
        waiter.start()
        time.sleep(0.3)  # the other hub is waiting for the lock
        queued = store.submit_write(lambda tx: tx.meta.get("chain-other"))
        time.sleep(0.05)
        gate.set()
        assert blocker.result(5) == "blocker"  # answered while the other hub holds the lock
        assert got_lock.wait(5)
        waiter.join(5)
        time.sleep(0.2)
        assert not queued.done()  # the next batch waits for the lock, as any batch would
        other.commit()
        assert queued.result(5) == "x"  # begun after the other hub's commit: it reads what it wrote
        assert store.write_sync(_put("chain-after", "y")) == "y"  # the writer goes on as before
    finally:
        other.close()
        store.close()


def test_a_unit_lost_at_the_commit_leaves_the_batch_taken_after_it_whole(store: Store) -> None:
    """A deferred write that fails at the COMMIT loses its unit (the batch runs again without it) after
    the next batch was taken from the queue: that batch still runs, once, in order."""
    store.write_sync(_put("taken", "before"))
    gate, _, blocker = _blocked(store)
    second_gate, second_running = threading.Event(), threading.Event()

    def duplicate(tx: Any) -> str:  # its INSERT waits for a later round trip (PostgreSQL), then fails
        tx.ex.defer("INSERT INTO hub_meta (key, value) VALUES (?, ?)", ("taken", "again"))
        return "duplicate"

    def slow(tx: Any) -> str:
        second_running.set()
        second_gate.wait(10)
        tx.ex.defer("INSERT INTO hub_meta (key, value) VALUES (?, ?)", ("slow", "done"))  # nothing asked yet
        return "slow"

    first = [store.submit_write(duplicate), store.submit_write(slow)]
    time.sleep(0.05)
    gate.set()
    assert blocker.result(5) == "blocker"
    assert second_running.wait(5)
    runs: list[str] = []

    def after(tx: Any) -> str:
        runs.append(tx.meta.get("slow"))
        tx.meta.put("after", str(len(runs)))
        return str(tx.meta.get("slow"))

    later = store.submit_write(after)  # queued while the first batch runs: taken at its COMMIT
    time.sleep(0.05)
    second_gate.set()
    with pytest.raises(Exception, match="(?i)unique|duplicate|constraint"):
        first[0].result(5)
    assert first[1].result(5) == "slow"
    assert later.result(5) == "done"
    assert runs == ["done"]  # once: the lost unit's rerun did not run the next batch's unit
    assert store.read_sync(lambda tx: (tx.meta.get("taken"), tx.meta.get("after"))) == ("before", "1")
    # PostgreSQL learns of the failure at the COMMIT and runs the batch again; SQLite's INSERT fails in its unit
    assert store.writer_runs_again()["unit_lost"] == (store.name == "postgresql")


def test_what_a_batch_commits_is_read_by_the_batch_begun_with_its_commit(store: Store) -> None:
    """The next batch's BEGIN, its standing halts and its reads come after the COMMIT of the batch it was
    begun with: a halt that batch put is standing for it (read with its BEGIN, not asked again)."""
    gate, _, blocker = _blocked(store)
    ran, release = threading.Event(), threading.Event()

    def halt_then_wait(tx: Any) -> None:
        tx.halts.put({"scope": "*", "reason": "test", "halted_by": "t", "halted_at": 1.0})
        ran.set()
        release.wait(10)

    halted = store.submit_write(halt_then_wait)
    time.sleep(0.05)
    gate.set()
    blocker.result(5)
    assert ran.wait(5)
    seen = store.submit_write(lambda tx: ([h["scope"] for h in tx.halts.all()], tx.meta.get("chain-seen")))
    time.sleep(0.05)  # queued while the halting batch runs: begun with its COMMIT on PostgreSQL
    release.set()
    halted.result(5)
    assert seen.result(5) == (["*"], None)
