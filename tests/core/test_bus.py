"""The in-memory event ring: subscribers get exactly the events after their cursor, or are told to read the store."""

from __future__ import annotations

import asyncio

from coordhub.core.bus import EventBus


def _rows(a: int, b: int) -> list[dict[str, int]]:
    return [{"id": i} for i in range(a, b + 1)]


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
