"""A session's stream slots counted in PostgreSQL, for every hub on one database (:mod:`coordhub.store.pgslots`).

Each :class:`AdvisorySlots` has its own connection, as each hub has: two of them
here are two hubs. A real PostgreSQL throughout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from coordhub.api.streams import StreamSlots
from coordhub.errors import TooManyStreams
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
    assert again is not None and again.lock == second.lock and b.take(alice) is None
    a.close()  # a hub whose connection ends (killed, say) holds nothing any more
    assert b.take(alice) is not None and b.take(alice) is None


def test_a_ticket_of_a_connection_since_lost_gives_back_nothing(hubs: tuple[AdvisorySlots, AdvisorySlots]) -> None:
    """After a reconnection the same lock id may be held again for another stream: the old stream's end must not
    give it back."""
    a, b = hubs
    alice = _key()
    old = a.take(alice)
    assert old is not None
    a.close()
    new = a.take(alice)  # a new connection, the same first slot
    assert new is not None and new.lock == old.lock and new.generation != old.generation
    a.give(old)
    assert b.take(alice) is not None and b.take(alice) is None  # the new one is still held


def test_keys_whose_digests_collide_share_one_budget_rather_than_exceed_it(
        hubs: tuple[AdvisorySlots, AdvisorySlots], monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection takes a lock it holds again (they stack): without the process's own record, a colliding key
    would lock its held slot a second time."""
    base = abs(hash(_key())) % 1_000_000 * 2
    monkeypatch.setattr(AdvisorySlots, "_base", lambda self, key: base)
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
                                                           connect: Callable[[], Any],
                                                           caplog: pytest.LogCaptureFixture) -> None:
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
