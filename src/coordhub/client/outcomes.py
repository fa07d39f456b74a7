"""What a call of the synchronous client ends in besides the hub's decoded JSON: its errors, a queued write, a page.

:class:`HubError` and :class:`Unreachable` are the errors of every client on ``httpx2`` (the asyncio client's too,
:mod:`coordhub.client.aio`); :class:`Queued` is a write waiting in the softfail queue
(:mod:`coordhub.client.softfail`); :class:`Leases` and :class:`Thread` are lists the hub answers in pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class HubError(Exception):
    """The hub answered with an error (4xx, or 5xx on a read), or the URL with a status no hub answers (a 3xx
    redirect: code ``not_applied``). ``code`` is the envelope's code."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class BadArgument(HubError):
    """An argument of a call the hub would surely refuse (a record id that is no id), found by the client before
    anything was sent or queued: 422 ``invalid``, as the hub would answer. A front end reports it as the caller's
    mistake (the CLI: a usage error, exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(422, "invalid", message)


class Unreachable(Exception):
    """The hub could not be reached (network error, timeout, or 5xx) and the call could not be queued.

    ``sent``: whether the request may have reached the hub (False only when no connection was made: a write
    then certainly took no effect).
    """

    def __init__(self, message: str = "", *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass(frozen=True)
class Queued:
    """A write that did not reach the hub and waits in the softfail queue."""

    method: str
    path: str
    idempotency_key: str
    pending: int
    reason: str


class Leases(list[dict[str, Any]]):
    """Live leases as :meth:`coordhub.client.client.CoordClient.locks` read them, oldest grant first.

    ``next_after_fence`` is None when the list holds every live lease that
    matched; otherwise more follow, and ``locks(after_fence=next_after_fence)``
    continues the list where this one stopped.
    """

    next_after_fence: int | None = None


class Listed(list[dict[str, Any]]):
    """A list the hub answers in pages named by ``Coord-Next-Cursor`` (todos, components), as
    :meth:`coordhub.client.calls.FleetCalls.todos` read it: ``more`` is True when it stopped with pages left."""

    more: bool = False


class Thread(list[dict[str, Any]]):
    """One page of a thread's messages as :meth:`coordhub.client.client.CoordClient.thread` read it, oldest first.

    ``next_after_seq`` is None when the page ends the thread as this session
    may read it; otherwise more follow, and ``thread(thread_id,
    after_seq=next_after_seq)`` continues where this page stopped.
    """

    next_after_seq: int | None = None
