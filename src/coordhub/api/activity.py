"""In-band heartbeats: a request that says so keeps its session's presence alive, in the same round trip.

Agents that work only through the ``coord`` CLI never register presence (the
hooks do, with incarnations), so ``coord presence`` showed nobody while they
worked (issue 7 point 19). The CLI therefore marks the first request of each
invocation with ``X-Coord-Heartbeat: 1``, and the hub records a heartbeat of
the caller's session (:func:`coordhub.core.presence.heartbeat` without an
incarnation: a session that is not registered registers) before answering.

Why a request header rather than every read counting: presence is a claim that
a session's agent is at work, which a client makes; a dashboard, a script or
an admin reading with a token does not make it, and reads stay reads. Why not
a separate ``POST /presence/heartbeat``: that is a second round trip for every
command. Cost: at most one write per session every :data:`MIN_INTERVAL`
seconds per hub process (a clock in memory skips the rest), allowed during a
halt like every presence write, and never the reason a request fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from coordhub.core.calls import Call
from coordhub.core.halt import Exempt
from coordhub.core.hub import Hub
from coordhub.core.identity import ADMIN_NAME, Actor
from coordhub.errors import CoordError

MIN_INTERVAL = 30.0  # seconds; well inside presence's 2-minute "active" window
MAX_TRACKED = 100_000  # sessions remembered before the memory is cleared (then each may beat once more)

log = logging.getLogger("coordhub.api")


class Heartbeats:
    """Records in-band heartbeats of sessions, at most one per :data:`MIN_INTERVAL` each.

    ``clock`` gives seconds (monotonic) and is a parameter so tests need not sleep.
    """

    def __init__(self, hub: Hub, clock: Callable[[], float] = time.monotonic) -> None:
        self.hub = hub
        self.clock = clock
        self._last: dict[str, float] = {}

    async def beat(self, actor: Actor) -> None:
        """Heartbeat ``actor``'s session unless it beat less than :data:`MIN_INTERVAL` ago.

        The bootstrap admin identity is not an agent session and is skipped. A
        failure (database unavailable, a refused session) is logged at debug
        level and swallowed: the request it rode on decides its own outcome.
        """
        if actor.is_admin and actor.session_id.casefold() == ADMIN_NAME:
            return
        key = actor.session_id.casefold()
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < MIN_INTERVAL:
            return
        if len(self._last) >= MAX_TRACKED:
            self._last.clear()
        self._last[key] = now
        try:
            await self.hub.mutate(actor, Call("presence.heartbeat", actor, incarnation=None),
                                  during_halt=Exempt.PRESENCE)
        except CoordError as exc:
            log.debug("in-band heartbeat of %s not recorded: %s", actor.session_id, exc.message)
        except RuntimeError as exc:  # the writer process failed it (a bug, logged there): still not the request's
            log.warning("in-band heartbeat of %s not recorded: %s", actor.session_id, exc)
