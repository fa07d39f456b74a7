"""In-process fan-out of committed events to waiting subscribers (SSE streams, long-polls).

After every commit the store's writer reads the events it appended and hands
them to :meth:`EventBus.publish` on the event loop. The bus keeps at least the most
recent :data:`RING_SIZE` events in memory and wakes every waiter once per
publish. A subscriber owns its cursor and pulls at its own pace: one that
falls behind the ring reads the rest from the store, and one that is slow to
drain its socket only delays itself — nothing is queued per subscriber, so
neither memory nor other subscribers suffer.
"""

from __future__ import annotations

import asyncio
import bisect

from coordhub.store.base import Row

RING_SIZE = 10_000


class EventBus:
    """The recent-event ring and the wake-up signal. Use from the event loop's thread only."""

    def __init__(self, last_id: int = 0, size: int = RING_SIZE) -> None:
        self._ring: list[Row] = []
        self._ids: list[int] = []  # the ring's ids, for bisection
        self._size = size
        self._changed = asyncio.Event()
        self.last_id = last_id
        self._complete_after = last_id  # the ring holds every event with id > this

    def publish(self, rows: list[Row]) -> None:
        """Add committed events (ascending ids, newer than any before) and wake every waiter."""
        fresh = [r for r in rows if r["id"] > self.last_id]
        if not fresh:
            return
        self._ring.extend(fresh)
        self._ids.extend(r["id"] for r in fresh)
        if len(self._ring) > 2 * self._size:  # trim in bulk: amortised O(1) per event
            cut = len(self._ring) - self._size
            self._complete_after = self._ids[cut - 1]
            del self._ring[:cut], self._ids[:cut]
        self.last_id = fresh[-1]["id"]
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def since(self, after_id: int) -> list[Row] | None:
        """Events with id > ``after_id`` from memory, or None when the ring does not reach back that far."""
        if after_id >= self.last_id:
            return []
        if after_id < self._complete_after:
            return None
        return self._ring[bisect.bisect_right(self._ids, after_id):]

    async def wait(self, after_id: int, timeout: float) -> bool:
        """Wait until an event newer than ``after_id`` is published; False on timeout."""
        if self.last_id > after_id:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True
