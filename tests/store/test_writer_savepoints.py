"""A SQLite write batch's first run takes no savepoints (issue 15: ~10 % of a unit's instructions).

``BatchWriter._run_unit``: a unit that fails having changed no row fails
alone, as with a savepoint; one that changed rows, or whose failure ended the
transaction, makes the batch roll back and run again, each unit in its own
savepoint, where its outcome is judged again. What the callers see is what
per-unit savepoints give them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coordhub.clock import ManualClock
from coordhub.core import leases, messages
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.errors import NotFound
from coordhub.store.sqlite import SQLiteStore
from coordhub.store.tables.sessions import MAX_CANDIDATES, SEEN_RESOLUTION
from coordhub.store.tx import Tx
from tests.core.test_batched_writes import _batch as _mutations
from tests.store.test_rows_ahead import _one_batch, _row


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "coord.db")
    s.open()
    try:
        yield s
    finally:
        s.close()


def _traced(store: SQLiteStore) -> list[str]:
    """The statements the writer's connection runs from now on."""
    seen: list[str] = []
    store.write_sync(lambda tx: tx.ex.conn.set_trace_callback(seen.append))
    return seen


def _event(tx: Tx, kind: str) -> int:
    return tx.events.append({"kind": kind, "session_id": "s", "project_key": None, "subject_id": None,
                             "payload": "{}", "created_at": 1.0})


def _batch(store: SQLiteStore, units: list[Callable[[Tx], object]]) -> list[object]:
    """Run ``units`` as one batch; each one's result, or its error's class name."""
    return [type(out).__name__ if isinstance(out, BaseException) else out for out in _one_batch(store, units)]


def _kinds(store: SQLiteStore) -> list[str]:
    return store.read_sync(lambda tx: [e["kind"] for e in tx.events.after(0)])


def test_a_batch_that_succeeds_runs_once_without_savepoints(store: SQLiteStore) -> None:
    seen = _traced(store)
    def adds(kind: str) -> Callable[[Tx], int]:
        return lambda tx: _event(tx, kind)

    got = _batch(store, [adds(k) for k in ("a", "b", "c")])
    assert all(isinstance(n, int) for n in got), got
    assert _kinds(store) == ["a", "b", "c"]
    assert not [s for s in seen if "SAVEPOINT" in s], seen


def test_a_unit_failing_before_it_writes_fails_alone_and_nothing_runs_again(store: SQLiteStore) -> None:
    runs: Counter[str] = Counter()

    def ok(kind: str) -> Callable[[Tx], int]:
        def unit(tx: Tx) -> int:
            runs[kind] += 1
            return _event(tx, kind)
        return unit

    def refuses(tx: Tx) -> None:
        tx.events.after(0)  # it reads, then refuses
        raise NotFound("no")

    seen = _traced(store)
    got = _batch(store, [ok("a"), refuses, ok("b")])
    assert isinstance(got[0], int) and got[1] == "NotFound" and isinstance(got[2], int), got
    assert _kinds(store) == ["a", "b"] and runs == {"a": 1, "b": 1}
    assert not [s for s in seen if "SAVEPOINT" in s], seen


def test_units_failing_after_they_wrote_lose_only_their_writes_in_two_runs_at_most(store: SQLiteStore) -> None:
    """Several units of one batch fail after writing: the batch runs once more, every unit in its savepoint, and
    they fail alone there. Every other unit commits, once."""
    runs: Counter[str] = Counter()

    def unit(i: int) -> Callable[[Tx], int]:
        def run(tx: Tx) -> int:
            runs[f"u{i}"] += 1
            n = _event(tx, f"u{i}")
            if i % 3 == 2:
                raise NotFound("after writing")
            return n
        return run

    seen = _traced(store)
    got = _batch(store, [unit(i) for i in range(10)])
    assert [g == "NotFound" for g in got] == [i % 3 == 2 for i in range(10)], got
    assert _kinds(store) == [f"u{i}" for i in range(10) if i % 3 != 2]
    # the units up to the first that failed having written ran twice, those after it only in the second run
    assert runs == {**{f"u{i}": 2 for i in (0, 1, 2)}, **{f"u{i}": 1 for i in range(3, 10)}}, runs
    assert sum(s == "SAVEPOINT unit" for s in seen) == 10  # the second run: every unit in its own
    assert store.writer_runs_again() == {"isolated": 1, "unit_lost": 0, "stale": 0}


def test_a_refusal_naming_a_row_of_the_first_run_is_judged_again(store: SQLiteStore) -> None:
    """A unit refused for a row another unit of the first run wrote (as a claim is for a lease granted just before
    it), after writing itself, is refused in the second run for that row as it was written there: never for one
    the rollback undid (each run names its row anew, as a lease's id is)."""
    refusals: list[str] = []

    def grant(tx: Tx) -> int:
        return _event(tx, f"granted {uuid.uuid4()}")

    def refuse_after_writing(tx: Tx) -> None:
        _event(tx, "attempt")
        granted = [e["kind"] for e in tx.events.after(0) if e["kind"].startswith("granted")]
        refusals.append(granted[-1])
        raise NotFound(f"taken: {granted[-1]}")

    granted, refused = _one_batch(store, [grant, refuse_after_writing])
    assert isinstance(granted, int) and isinstance(refused, NotFound), (granted, refused)
    [committed] = _kinds(store)
    assert str(refused) == f"taken: {committed}" and len(refusals) == 2, (refused, committed, refusals)


def test_a_unit_that_ends_the_transaction_commits_nothing_it_did_not_report(store: SQLiteStore) -> None:
    """SQLite ends a transaction itself on some errors (a full disk). A unit whose failure left no transaction
    open makes the batch run again; no unit after it runs outside a transaction, and what the callers are told
    is what committed. The next batch starts clean."""
    def ends_it(tx: Tx) -> None:
        _event(tx, "ends")
        tx.ex.execute("ROLLBACK")
        raise NotFound("the transaction is gone")

    got = _batch(store, [lambda tx: _event(tx, "a"), ends_it, lambda tx: _event(tx, "b")])
    assert got[1] != "ok" and not isinstance(got[1], int), got
    committed = _kinds(store)
    assert committed == [k for k, g in zip("ab", (got[0], got[2]), strict=True) if isinstance(g, int)], (got, committed)
    assert "ends" not in committed
    assert isinstance(store.write_sync(lambda tx: _event(tx, "next")), int)
    assert _kinds(store)[-1] == "next"


def test_a_send_refused_by_its_quota_writes_nothing_and_nothing_runs_again(store: SQLiteStore) -> None:
    """A send's day of sending is read before it is charged (``MessageQuota.charge`` on a local store): a send its
    quota refuses has written nothing, so it fails alone in the first run, and the charges of the others stand."""
    runs: Counter[str] = Counter()

    def send(kind: str, refuse: bool) -> Callable[[Tx], int]:
        def unit(tx: Tx) -> int:
            runs[kind] += 1

            def judge(messages: int, size: int) -> None:
                if refuse:
                    raise NotFound(f"over quota at {messages}")

            tx.message_quota.charge(kind, 20_000, 100, judge)
            return _event(tx, kind)
        return unit

    seen = _traced(store)
    got = _batch(store, [send("a", False), send("b", True), send("c", False)])
    assert isinstance(got[0], int) and got[1] == "NotFound" and isinstance(got[2], int), got
    assert _kinds(store) == ["a", "c"] and runs == {"a": 1, "b": 1, "c": 1}, runs
    assert not [s for s in seen if "SAVEPOINT" in s], seen
    def used(session: str) -> object:
        return store.read_sync(lambda tx: tx.message_quota.used(session, 20_000))

    charged = {s: used(s) for s in "abc"}
    assert charged == {"a": {"messages": 1, "bytes": 100}, "b": None, "c": {"messages": 1, "bytes": 100}}, charged


def test_a_refused_write_of_a_sender_due_a_last_seen_writes_nothing_and_nothing_runs_again(store: SQLiteStore) -> None:
    """A write moves its sender's ``last_seen`` last, once nothing can refuse it (``Sessions.act_then`` on a local
    store): a claim refused for a held file, by a session that last wrote over a second ago, has changed no row,
    so it fails alone in the batch's first run, and its ``last_seen`` stays where it was, as the savepoint of a
    unit refused used to leave it. The writes beside it move theirs."""
    clock = ManualClock()
    hub = Hub(store, clock)
    a, b, c = Actor("A/main"), Actor("B/main"), Actor("C/main")

    def claim(actor: Actor, resource: str) -> Callable[[Tx, float], object]:
        return lambda tx, now: leases.claim(tx, actor, project_key="p", resource=resource, description=None,
                                            ttl_hours=1, now=now)

    start = clock.now()
    assert _mutations(hub, [(a, claim(a, "held.py")), (b, claim(b, "b.py")), (c, claim(c, "c.py"))])[0]["id"]
    clock.advance(2 * SEEN_RESOLUTION)  # every sender's last_seen is due
    seen = _traced(store)
    got = _mutations(hub, [(a, claim(a, "a2.py")), (b, claim(b, "held.py")), (c, claim(c, "c2.py"))])
    assert isinstance(got[0], dict) and got[1] == "LeaseConflict" and isinstance(got[2], dict), got
    assert not [s for s in seen if "SAVEPOINT" in s], seen  # one run
    assert store.writer_runs_again()["isolated"] == 0
    assert {x.session_id: _row(store, x.session_id)["last_seen"] for x in (a, b, c)} == {
        a.session_id: start + 2 * SEEN_RESOLUTION, b.session_id: start, c.session_id: start + 2 * SEEN_RESOLUTION}


def test_a_sender_whose_last_seen_waits_for_its_unit_end_is_still_seen_now_by_its_unit(store: SQLiteStore) -> None:
    """What a unit reads of its own sender by ``last_seen`` counts it as seen now, though that is written last: a
    send to a typo of its own id suggests the sender even when 256 sessions were seen since its last write
    (``Sessions.known_ids`` ranks the acting session first), as when its upsert ran before the operation."""
    clock = ManualClock()
    hub = Hub(store, clock)
    me = Actor("alpha/main")
    hub.mutate_sync(me, lambda tx, now: None)
    clock.advance(60)
    for n in range(MAX_CANDIDATES):  # each seen after the sender: it is the 257th most recent
        other = Actor(f"zz{n:03d}/main")
        hub.mutate_sync(other, lambda tx, now: None)
    clock.advance(60)  # the sender's last_seen is due: its send writes it last
    got = hub.mutate_sync(me, lambda tx, now: messages.send(tx, me, to_session="alpha/mian", subject="s", body="b",
                                                           now=now)).body
    assert got["did_you_mean"] == ["alpha/main"], got
    assert _row(store, me.session_id)["last_seen"] == clock.now()
