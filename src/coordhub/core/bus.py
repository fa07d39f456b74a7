"""In-process fan-out of committed events to waiting subscribers (SSE streams, long-polls).

After every commit the store's writer reads the events it appended and hands
them to :meth:`EventBus.publish` on the event loop. The bus keeps the most
recent events in memory, bounded both by count (:data:`RING_SIZE`) and by
estimated bytes (:data:`RING_BYTES`, see :func:`cost`), and wakes every waiter
once per publish. A subscriber owns its cursor and pulls at its own pace: one
that falls behind the ring reads the rest from the store, and one that is slow
to drain its socket only delays itself, so neither memory nor other
subscribers suffer. Live SSE streams are fed by a listener instead, in one
pass per publish (``coordhub.api.fanout``), and drop back to pulling by cursor
when they fall behind; long-polls wait here.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Callable

from coordhub.store.base import Row

log = logging.getLogger("coordhub.bus")

RING_SIZE = 10_000
RING_BYTES = 32 * 1024 * 1024
ROW_OVERHEAD = 600  # bytes: the row dict, its ten values, and the frame's headers


def cost(row: Row) -> int:
    """Estimated bytes a ring row holds: its payload twice (the text and the SSE frame made from it) + overhead."""
    return 2 * len(row["payload"]) + ROW_OVERHEAD


class EventBus:
    """The recent-event ring and the wake-up signal. Use from the event loop's thread only.

    The ring holds at most ``2 * size`` events and ``max_bytes`` estimated
    bytes; when either is passed it is trimmed from the oldest end in bulk
    (to ``size`` events and half of ``max_bytes``), so trimming costs
    amortised O(1) per event.
    """

    def __init__(self, last_id: int = 0, size: int = RING_SIZE, max_bytes: int = RING_BYTES) -> None:
        self._ring: list[Row] = []
        self._ids: list[int] = []  # the ring's ids, for bisection
        self._costs: list[int] = []
        self._size = size
        self._max_bytes = max_bytes
        self.bytes = 0  # estimated bytes the ring holds now
        self._changed: asyncio.Event | None = None  # made by the first waiter since the last publish (most have none)
        self.last_id = last_id
        self._complete_after = last_id  # the ring holds every event with id > this
        # Called with each publish's new rows, before waiters wake (the hub applies revocations here).
        self.listeners: list[Callable[[list[Row]], None]] = []

    def publish(self, rows: list[Row]) -> list[Row]:
        """Add committed events (ascending ids; those not newer than any before are dropped), wake every waiter.

        Returns the rows that were new.
        """
        fresh = [r for r in rows if r["id"] > self.last_id]
        if not fresh:
            return fresh
        costs = [cost(r) for r in fresh]
        self._ring.extend(fresh)
        self._ids.extend(r["id"] for r in fresh)
        self._costs.extend(costs)
        self.bytes += sum(costs)
        if len(self._ring) > 2 * self._size or self.bytes > self._max_bytes:
            self._trim()
        self.last_id = fresh[-1]["id"]
        for listener in self.listeners:
            try:
                listener(fresh)
            except Exception:  # one listener's bug must not stop the stream
                log.exception("event bus listener failed")
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
        return fresh

    def _trim(self) -> None:
        cut = max(0, len(self._ring) - self._size)
        held = self.bytes - sum(self._costs[:cut])
        while cut < len(self._ring) and held > self._max_bytes // 2:
            held -= self._costs[cut]
            cut += 1
        if cut:
            self._complete_after = self._ids[cut - 1]
            del self._ring[:cut], self._ids[:cut], self._costs[:cut]
            self.bytes = held

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
            if self._changed is None:
                self._changed = asyncio.Event()
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True
