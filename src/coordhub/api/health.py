"""What ``GET /health`` costs, kept small: the database state is probed at most once per :data:`PROBE_SECONDS`.

``/health`` needs no token, so anyone who can reach the port can call it as
often as they like. Each call costs routing and a small JSON answer; the
database ping (a ``SELECT 1`` on a reader thread) runs at most once per
:data:`PROBE_SECONDS` however many calls arrive, and concurrent calls during
a probe wait for that one probe rather than starting their own. So a
``/health`` flood cannot load the store, and the state it reports is at most
that old. A request that finds the database unreachable in the meantime
records it at once (:meth:`DatabaseProbe.saw_unavailable`), so an outage shows
on ``/health`` as soon as any request has met it.
"""

from __future__ import annotations

import asyncio
import time

from coordhub.core.hub import Hub
from coordhub.errors import Unavailable

PROBE_SECONDS = 1.0


class DatabaseProbe:
    """The cached answer to "is the database reachable?". Use from the event loop's thread only."""

    def __init__(self, hub: Hub, ttl: float = PROBE_SECONDS) -> None:
        self.hub = hub
        self.ttl = ttl
        self.probes = 0  # pings run so far
        self._state: tuple[bool, float] | None = None  # (reachable, monotonic time probed)
        self._running: asyncio.Future[bool] | None = None

    async def reachable(self) -> bool:
        """Whether the database answered its last ping (probing again if that is older than ``ttl``)."""
        if self._state is not None and time.monotonic() - self._state[1] < self.ttl:
            return self._state[0]
        if self._running is None:
            self._running = asyncio.ensure_future(self._probe())
        running = self._running
        return await asyncio.shield(running)

    def saw_unavailable(self) -> None:
        """Record that a request just found the database unreachable (fresher evidence than the last ping)."""
        self._state = (False, time.monotonic())

    async def _probe(self) -> bool:
        self.probes += 1
        try:
            ok = bool(await self.hub.query(lambda tx, now: tx.ping()))
        except Unavailable:
            ok = False
        finally:
            self._running = None
        self._state = (ok, time.monotonic())
        return ok
