"""The in-memory event ring: subscribers get exactly the events after their cursor, or are told to read the store."""

from __future__ import annotations

import asyncio
from typing import Any

from coordhub.core.bus import EventBus


def _rows(a: int, b: int, payload: str = "{}") -> list[dict[str, Any]]:
    return [{"id": i, "payload": payload} for i in range(a, b + 1)]


def test_since_returns_exactly_newer_events_and_none_when_trimmed() -> None:
    async def scenario() -> None:
        bus = EventBus(last_id=10, size=5)
        assert bus.since(10) == [] and bus.since(3) is None  # before the bus started: read the store
        bus.publish(_rows(11, 14))
        assert [r["id"] for r in bus.since(12) or []] == [13, 14]
        bus.publish(_rows(12, 14))  # replays are ignored
        assert [r["id"] for r in bus.since(10) or []] == [11, 12, 13, 14]
        bus.publish(_rows(15, 30))  # more than 2x size: the ring is trimmed to the newest
        assert bus.since(11) is None
        assert [r["id"] for r in bus.since(27) or []] == [28, 29, 30]

    asyncio.run(scenario())


def test_wait_wakes_on_publish_and_times_out() -> None:
    async def scenario() -> None:
        bus = EventBus()
        assert await bus.wait(0, 0.01) is False
        waiter = asyncio.create_task(bus.wait(0, 5))
        await asyncio.sleep(0.01)
        bus.publish(_rows(1, 1))
        assert await waiter is True
        assert await bus.wait(0, 0.01) is True  # already newer

    asyncio.run(scenario())


def test_the_ring_is_bounded_by_bytes_whatever_the_event_sizes() -> None:
    async def scenario() -> None:
        budget = 8 * 1024 * 1024
        bus = EventBus(size=10_000, max_bytes=budget)
        big = "x" * (1024 * 1024)
        for i in range(1, 101):  # 100 events of 1 MiB: far under the count bound, 25 times the byte bound
            bus.publish(_rows(i, i, big))
            assert bus.bytes <= budget
        newest = bus.since(99)
        assert newest is not None and [r["id"] for r in newest] == [100]
        assert bus.since(1) is None  # trimmed: such a reader goes to the store

    asyncio.run(scenario())
