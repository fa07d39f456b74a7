"""A session's stream slots counted in PostgreSQL, for every hub on one database (:mod:`coordhub.store.pgslots`).

Each :class:`AdvisorySlots` has its own connection, as each hub has: two of them
here are two hubs. A real PostgreSQL throughout.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from coordhub.api import streams
from coordhub.api.streams import StreamSlots
from coordhub.errors import TooManyStreams, Unavailable
from coordhub.store.pgslots import AdvisorySlots


@pytest.fixture
def connect(pg_url: str) -> Callable[[], Any]:
    return lambda: psycopg.connect(pg_url, autocommit=True, row_factory=dict_row, connect_timeout=3)


@pytest.fixture
def hubs(connect: Callable[[], Any]) -> Iterator[tuple[AdvisorySlots, AdvisorySlots]]:
    a, b = AdvisorySlots(connect, 2), AdvisorySlots(connect, 2)
    yield a, b
    a.close()
    b.close()


def _key() -> str:
    return f"S{uuid.uuid4().hex[:8]}/main"


def test_slots_another_hub_holds_are_refused_and_freed_when_it_gives_them_back_or_its_connection_ends(
        hubs: tuple[AdvisorySlots, AdvisorySlots]) -> None:
    a, b = hubs
    alice, bob = _key(), _key()
    first, second = a.take(alice), a.take(alice)
    assert first is not None and second is not None and a.take(alice) is None
    assert b.take(alice) is None  # both of alice's slots are the other hub's
    assert b.take(bob) is not None  # another session's are its own
    a.give(second)
    again = b.take(alice)
    assert again is not None and again.low == second.low and b.take(alice) is None
    a.close()  # a hub whose connection ends (killed, say) holds nothing any more, once its server session ended
    assert _eventually(lambda: b.take(alice) is not None) and b.take(alice) is None


def test_a_ticket_of_a_connection_since_lost_gives_back_nothing(hubs: tuple[AdvisorySlots, AdvisorySlots],
                                                              connect: Callable[[], Any]) -> None:
    """After a reconnection the same lock id may be held again for another stream: the old stream's end must not
    give it back."""
    a, b = hubs
    alice = _key()
    old = a.take(alice)
    assert old is not None
    a.close()
    with connect() as admin:  # the closed connection's server session ends a moment later, and its locks with it
        assert _eventually(lambda: not admin.execute(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::int8::oid "
            "AND objid = %s::int8::oid", (old.high, old.low)).fetchall())
    new = a.take(alice)  # a new connection, the same first slot
    assert new is not None and new.low == old.low and new.generation != old.generation
    a.give(old)
    assert b.take(alice) is not None and b.take(alice) is None  # the new one is still held


def test_keys_whose_digests_collide_share_one_budget_rather_than_exceed_it(
        hubs: tuple[AdvisorySlots, AdvisorySlots], monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection takes a lock it holds again (they stack): without the process's own record, a colliding key
    would lock its held slot a second time."""
    keys = (abs(hash(_key())) % 1_000_000, abs(hash(_key())) % 1_000_000 * 2)
    monkeypatch.setattr(AdvisorySlots, "_keys", lambda self, key: keys)
    a, _ = hubs
    assert a.take("alice") is not None and a.take("alice") is not None
    assert a.take("bob") is None


def test_a_stream_count_on_the_database_refuses_past_the_limit_of_every_hub(
        hubs: tuple[AdvisorySlots, AdvisorySlots]) -> None:
    other, mine = hubs
    alice = _key()
    assert other.take(alice) is not None
    slots = StreamSlots(per_key=2, total=100)
    slots.share_database(mine)

    async def run() -> None:
        release = await slots.acquire(alice)
        with pytest.raises(TooManyStreams, match="across the hubs on the database"):
            await slots.acquire(alice)
        assert slots.held == 1
        release()
        release()  # idempotent

    try:
        asyncio.run(run())
        assert _eventually(lambda: other.take(alice) is not None)  # given back on the slots' own thread
    finally:
        slots.close()


def test_a_database_that_cannot_be_asked_leaves_the_count_per_hub(caplog: pytest.LogCaptureFixture) -> None:
    def refuse() -> Any:
        raise psycopg.OperationalError("connection refused")

    slots = StreamSlots(per_key=1, total=100)
    slots.share_database(AdvisorySlots(refuse, 1))

    async def run() -> None:
        async with slots.hold("alice"):  # admitted, counted here
            assert "counted in each hub process until the database answers" in caplog.text
            with pytest.raises(TooManyStreams, match="the limit per token"):
                await slots.acquire("alice")
        assert slots.held == 0

    try:
        asyncio.run(run())
    finally:
        slots.close()


def test_a_connection_lost_is_opened_again_and_counts_again(hubs: tuple[AdvisorySlots, AdvisorySlots],
                                                           connect: Callable[[], Any], monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(streams, "DATABASE_RETRY_SECONDS", 0.0)  # asked again by the next stream
    other, mine = hubs
    alice = _key()
    assert mine.take(_key()) is not None  # opens its connection
    with connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (mine._conn.info.backend_pid,))
    slots = StreamSlots(per_key=2, total=100)
    slots.share_database(mine)

    async def run() -> None:
        async with slots.hold(alice):  # the lost connection: admitted, counted here
            assert "counted in each hub process" in caplog.text
        async with slots.hold(alice):  # a new connection: counted in the database again
            assert "counted in the database again" in caplog.text
            assert other.take(alice) is not None and other.take(alice) is None  # one of alice's two is held here

    try:
        asyncio.run(run())
    finally:
        slots.close()


def test_an_open_cancelled_while_the_database_answers_keeps_no_slot(
        hubs: tuple[AdvisorySlots, AdvisorySlots], monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that goes away while its stream's slot is being taken: the take still ends on the slots' thread,
    and the slot it took is given back."""
    other, mine = hubs
    alice = _key()
    slow = mine.take

    def take(key: str) -> Any:
        time.sleep(0.3)
        return slow(key)

    monkeypatch.setattr(mine, "take", take)
    slots = StreamSlots(per_key=1, total=100)
    slots.share_database(mine)

    async def run() -> None:
        opening = asyncio.create_task(slots.acquire(alice))
        await asyncio.sleep(0.05)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        assert slots.held == 0

    try:
        asyncio.run(run())
        assert _eventually(lambda: other.take(alice) is not None)
    finally:
        slots.close()


def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class _Counted:
    """A connection that counts its statements (round trips)."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.statements = conn, 0

    def execute(self, *args: Any) -> Any:
        self.statements += 1
        return self.conn.execute(*args)

    def close(self) -> None:
        self.conn.close()


def test_a_key_whose_slots_are_all_held_elsewhere_is_refused_in_one_round_trip(
        connect: Callable[[], Any], hubs: tuple[AdvisorySlots, AdvisorySlots]) -> None:
    """Review: each slot was tried in turn, one round trip each: with 64 slots held by other hubs a refused open
    cost 64 round trips on the one thread every hub stream waits behind."""
    other, _ = hubs
    counted: list[_Counted] = []

    def connect_counted() -> Any:
        counted.append(_Counted(connect()))
        return counted[-1]

    mine = AdvisorySlots(connect_counted, 2)
    try:
        alice = _key()
        assert other.take(alice) is not None and other.take(alice) is not None
        assert mine.take(alice) is None and counted[0].statements == 1
        assert mine.take(_key()) is not None and counted[0].statements == 3  # the read, then the lock taken
    finally:
        mine.close()


class _Stuck:
    """Slots on a database that stopped answering: each take waits until released (a network path gone dark)."""

    def __init__(self) -> None:
        self.released, self.takes = threading.Event(), 0

    def take(self, key: str) -> Any:
        self.takes += 1
        self.released.wait()
        raise Unavailable("gone")

    def give(self, ticket: Any) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_database_that_stops_answering_is_not_asked_by_every_stream(monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Review: each open waited its 5 s and queued one more take behind the stuck one; now, once the database
    did not answer, streams are counted in the hub until the retry time, and at most MAX_PENDING takes queue."""
    monkeypatch.setattr(streams, "DATABASE_SECONDS", 0.2)
    stuck = _Stuck()
    slots = StreamSlots(per_key=1000, total=10_000)
    slots.share_database(stuck)  # type: ignore[arg-type]

    async def run() -> None:
        async with slots.hold("alice"):  # waits 0.2 s, then counted here
            pass
        async with slots.hold("alice"), slots.hold("bob"):  # the database is not asked again before the retry
            pass
        assert "counted in each hub process until the database answers" in caplog.text

    try:
        asyncio.run(run())
        stuck.released.set()  # the database answers again: a take queued meanwhile would run now
        time.sleep(0.5)
        assert stuck.takes == 1
    finally:
        stuck.released.set()
        slots.close()


def test_takes_queued_for_a_slow_database_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "DATABASE_SECONDS", 30.0)
    stuck = _Stuck()
    slots = StreamSlots(per_key=1000, total=10_000)
    slots.share_database(stuck)  # type: ignore[arg-type]

    async def run() -> None:
        opening = [asyncio.create_task(slots.acquire(f"s{i}")) for i in range(streams.MAX_PENDING + 10)]
        await asyncio.sleep(0.2)
        ready = [task for task in opening if task.done()]
        assert len(ready) == 10, len(ready)  # past the bound, counted here at once; the others still wait
        stuck.released.set()
        for release in await asyncio.gather(*opening):
            release()

    try:
        asyncio.run(run())
    finally:
        stuck.released.set()
        slots.close()


def test_a_hub_whose_database_stopped_answering_still_exits() -> None:
    """Review: the slots ran on a ThreadPoolExecutor, whose threads the interpreter joins at exit: a take stuck on
    a dark network path kept the hub process alive for the kernel's TCP timeout (about 15 minutes)."""
    script = textwrap.dedent("""
        import asyncio, threading
        from coordhub.api import streams
        streams.DATABASE_SECONDS = 0.2

        class Stuck:
            def take(self, key):
                threading.Event().wait()

            def close(self):
                pass

        slots = streams.StreamSlots(per_key=2, total=100)
        slots.share_database(Stuck())

        async def run():
            async with slots.hold("alice"):
                pass

        asyncio.run(run())
        slots.close()
        print("done", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout == "done\n", done


def test_a_failure_that_is_not_the_databases_answer_admits_the_stream_and_backs_off(
        caplog: pytest.LogCaptureFixture) -> None:
    """Review: only Unavailable was caught: any other error of a take failed the request (a 500) and the database
    was asked again by every stream."""
    class Broken:
        takes = 0

        def take(self, key: str) -> Any:
            Broken.takes += 1
            raise KeyError("low")

        def close(self) -> None:
            pass

    slots = StreamSlots(per_key=1, total=100)
    slots.share_database(Broken())  # type: ignore[arg-type]

    async def run() -> None:
        async with slots.hold("alice"), slots.hold("bob"):
            assert slots.held == 2
        assert slots.held == 0

    try:
        asyncio.run(run())
        assert Broken.takes == 1 and "counting a stream slot of alice in the database failed" in caplog.text
    finally:
        slots.close()

