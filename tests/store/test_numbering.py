"""Fences, counters and message seqs handed out by the writer (issue 15: no round trip for a number on PostgreSQL).

On PostgreSQL the writer reads where every counter stands with the batch's
``BEGIN`` and moves them with its ``COMMIT`` (``store/pgnumbers.py``); on
SQLite each number is an ``UPDATE … RETURNING``. Both must keep the rules:
numbers strictly increase in commit order across batches and hubs, an answer
carries the number its row was stored with (also when the batch ran twice),
and SQL that moves a counter itself (an archive import) is never undercut.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from coordhub.clock import ManualClock
from coordhub.core import leases, messages
from coordhub.core.hub import Hub, Operation
from coordhub.core.identity import Actor
from coordhub.store import Store
from coordhub.store.tx import Tx

A, B = Actor("A/main"), Actor("B/main")


def _batch(hub: Hub, ops: list[Operation]) -> list[Any]:
    """Run ``ops`` (as A) in one write batch; each one's body, or its exception's class name."""
    async def run() -> list[Any]:
        gate = threading.Event()
        held = hub.store.submit_write(lambda tx: gate.wait(10))  # what follows queues behind it: one batch
        tasks = [asyncio.ensure_future(hub.mutate(A, op)) for op in ops]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.wrap_future(held)
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return [type(d).__name__ if isinstance(d, BaseException) else d.body for d in done]

    return asyncio.run(run())


def _claim(resource: str) -> Operation:
    return lambda tx, now: leases.claim(tx, A, project_key="p", resource=resource, description=None,
                                        ttl_hours=1, now=now)


def _send(subject: str) -> Operation:
    return lambda tx, now: messages.send(tx, A, to_session=B.session_id, subject=subject, body="b", now=now)


def _stored(store: Store) -> tuple[dict[str, int], dict[str, int]]:
    """Fence by resource, seq by subject, as stored."""
    fences = store.read_sync(lambda tx: tx.ex.all("SELECT resource, fence FROM leases"))
    seqs = store.read_sync(lambda tx: tx.ex.all("SELECT subject, seq FROM messages"))
    return {r["resource"]: r["fence"] for r in fences}, {r["subject"]: r["seq"] for r in seqs}


def test_answers_carry_the_stored_numbers_when_the_batch_runs_again(store: Store, clock: ManualClock) -> None:
    """A batch whose unit loses a deferred write after it ended runs again without that unit: every other
    answer's fence and seq are those its row was stored with (the rerun's, not the first run's); a unit
    that took numbers and then failed leaves a gap, never a duplicate; the next batch goes on above."""
    hub = Hub(store, clock)
    hub.mutate_sync(A, lambda tx, now: tx.ex.execute("INSERT INTO hub_meta (key, value) VALUES ('dup', 'v')"))

    def lost(tx: Tx, now: float) -> Any:
        _send("lost")(tx, now)
        _claim("lost.py")(tx, now)
        tx.ex.defer("INSERT INTO hub_meta (key, value) VALUES ('dup', 'v')")  # fails once the unit ended

    def fails(tx: Tx, now: float) -> Any:
        _claim("failed.py")(tx, now)
        _send("failed")(tx, now)
        raise RuntimeError("the unit's own failure, after it took a fence and a seq")

    got = _batch(hub, [_claim("a.py"), _send("m1"), lost, _claim("b.py"), fails, _send("m2"), _claim("c.py")])
    assert got[2] in ("UniqueViolation", "IntegrityError") and got[4] == "RuntimeError", got
    fences, seqs = _stored(store)
    assert set(fences) == {"a.py", "b.py", "c.py"} and set(seqs) == {"m1", "m2"}
    assert [g["fence"] for g in (got[0], got[3], got[6])] == [fences["a.py"], fences["b.py"], fences["c.py"]]
    assert [got[1]["seq"], got[5]["seq"]] == [seqs["m1"], seqs["m2"]]
    assert fences["a.py"] < fences["b.py"] < fences["c.py"] and seqs["m1"] < seqs["m2"]
    after = _batch(hub, [_claim("d.py"), _send("m3")])
    assert after[0]["fence"] > fences["c.py"] and after[1]["seq"] > seqs["m2"]
    counter = store.read_sync(lambda tx: tx.ex.one("SELECT value FROM counters WHERE name = 'fence'"))
    assert counter is not None and counter["value"] >= after[0]["fence"]  # the counter moved with the commit


def test_numbers_increase_in_commit_order_across_two_hubs(store_factory: Callable[[], Store],
                                                          clock: ManualClock) -> None:
    """Two hubs on one database claim and send in batches at once: every fence and seq is given once,
    and both rise in the order the batches committed (the order of their events)."""
    hubs = [Hub(store_factory(), clock), Hub(store_factory(), clock)]

    def drive(h: int) -> None:
        for b in range(6):
            _batch(hubs[h], [op for i in range(5) for op in (_claim(f"h{h}/{b}/{i}.py"), _send(f"h{h}-{b}-{i}"))])

    threads = [threading.Thread(target=drive, args=(h,)) for h in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    events = hubs[0].store.read_sync(lambda tx: tx.events.after(0))
    payloads = [(e["kind"], json.loads(e["payload"])) for e in events]
    fences = [p["fence"] for k, p in payloads if k == "lease.granted"]
    seqs = [p["seq"] for k, p in payloads if k == "message.sent"]
    assert len(fences) == len(seqs) == 60
    assert fences == sorted(set(fences)) and seqs == sorted(set(seqs))
    stored_fences, stored_seqs = _stored(hubs[0].store)
    assert sorted(stored_fences.values()) == fences and sorted(stored_seqs.values()) == seqs


def test_a_counter_moved_by_sql_in_the_batch_is_never_undercut(store: Store, clock: ManualClock) -> None:
    """Units that move the fence counter (and, on PostgreSQL, the messages' id sequence) themselves, as an
    archive import does, between claims of one batch and after its last one: the claim after a move gets
    a number above the moved counter, and the commit never moves a counter back down."""
    hub = Hub(store, clock)
    pg = store.name == "postgresql"

    def move(fence: int, seq: int) -> Operation:
        def unit(tx: Tx, now: float) -> None:
            tx.ex.execute("UPDATE counters SET value = ? WHERE name = 'fence'", (fence,))
            if pg:
                tx.ex.one("SELECT setval(pg_get_serial_sequence('messages', 'seq'), ?)", (seq,))
            tx.ex.counters_moved()

        return unit

    got = _batch(hub, [_claim("a.py"), _send("m1"), move(1000, 5000), _claim("b.py"), _send("m2"),
                       move(2000, 9000)])
    assert got[0]["fence"] < 1000 < got[3]["fence"] < 2000, got
    if pg:
        assert got[1]["seq"] < 5000 < got[4]["seq"] < 9000, got
    fences, seqs = _stored(store)
    assert fences == {"a.py": got[0]["fence"], "b.py": got[3]["fence"]}
    assert seqs == {"m1": got[1]["seq"], "m2": got[4]["seq"]}
    counter = store.read_sync(lambda tx: tx.ex.one("SELECT value FROM counters WHERE name = 'fence'"))
    assert counter is not None and counter["value"] == 2000
    after = _batch(hub, [_claim("c.py"), _send("m3")])
    assert after[0]["fence"] == 2001
    if pg:
        assert after[1]["seq"] == 9001


def test_the_database_s_own_generator_goes_on_above_the_writer_s_numbers(store: Store, clock: ManualClock) -> None:
    """After sends numbered by the writer, a message inserted by plain SQL (no seq given: the database's
    generator, as an older hub or a manual repair would) gets a seq above every one of them."""
    hub = Hub(store, clock)
    sent = _batch(hub, [_send(f"m{i}") for i in range(5)])
    top = max(m["seq"] for m in sent)

    def plain(tx: Tx) -> int:
        row = tx.ex.one("INSERT INTO messages (id, from_session, to_session, subject, body, importance, "
                        "requires_ack, created_at) VALUES ('plain', 'x', 'y', 's', 'b', 'normal', 0, 0) RETURNING seq")
        assert row is not None
        return int(row["seq"])

    assert store.write_sync(plain) == top + 1
    assert _batch(hub, [_send("after")])[0]["seq"] == top + 2


@pytest.mark.postgres
def test_the_commit_s_counter_moves_are_prepared_once(pg_url: str, clock: ManualClock) -> None:
    """The statements that move the counters with each COMMIT carry their numbers as parameters: after 40
    batches that took fences and seqs, the writer's connection holds one prepared statement per kind of
    move, not one per batch (which filled its 512 prepared slots after ~500 batches, so every statement
    the writer met later was parsed and planned on each use)."""
    from coordhub.store import open_store

    store = open_store(pg_url)
    store.open()
    try:
        hub = Hub(store, clock)
        for i in range(40):
            _batch(hub, [_claim(f"prep/{i}.py"), _send(f"prep-{i}")])
        pipe = store._writer._conn.executor.pipe  # type: ignore[attr-defined]
        texts = [sql.decode() for sql, _ in pipe._prepared]
        moves = [t for t in texts if "GREATEST" in t]
        assert len(moves) == 2, moves
        assert len(texts) < 40, texts
    finally:
        store.close()
