"""The synchronous client's replays of seed 001's softfail queue, and what each replay's answer makes of its entry.

:class:`Softfail` is a base of :class:`coordhub.client.client.CoordClient`, which drains before any call;
:meth:`Softfail.sync` drains explicitly. The queue file, which entries are this client's, their order and their
expiry are :mod:`coordhub.client.queue`'s; here each entry is sent again with its idempotency key and queue time,
a 503 with ``Retry-After`` waited out once as for any write (:meth:`~coordhub.client.transport.Transport._attempt`).

When the drain has to stop at one of this client's entries because the hub
could not be reached (connection refused, timeout, dropped connection), said
it is unavailable (503, or a gateway's 502 or 504), or is rate-limiting this
session, newer writes must wait behind that entry (the client queues them
without sending them). When the hub answered another 5xx to the queued write
(a hub bug), new writes are sent as before, and the stuck entry is given up
after :data:`~coordhub.client.queue.MAX_FAILED_REPLAYS` such replays (moved to
the rejected file); a 502, 503 or 504 (a gateway whose hub is down) and the
hub's own ``database_unavailable`` are an outage, never counted.

Each queued entry records whether an attempt may have reached the hub
(``reached``: a timeout, a connection dropped after sending, a 5xx) or
certainly did not (connection refused, or queued behind others unsent); only
the former is set aside as expired when older than the hub keeps keys.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from coordhub.client import project
from coordhub.client.downgrade import downgraded
from coordhub.client.outcomes import HubError, Unreachable
from coordhub.client.queue import (
    APPLIED,
    DEFAULT_MAX_AGE_HOURS,
    FAILED,
    REJECTED,
    RETRY,
    RETRY_REACHED,
    Drained,
    Entry,
    SoftfailQueue,
)
from coordhub.client.settings import ClientSettings
from coordhub.client.transport import Failure, Transport

if TYPE_CHECKING:
    import httpx2

MAX_RETENTION_HOURS = 1e6  # an advertised idempotency retention this long or longer is taken as forever


class Softfail(Transport):
    """A client's softfail queue (``queue``, the file its settings name) and the replays of its entries.

    ``actor`` is who queues writes (:func:`_actor`); ``last_drain`` what the
    last drain before a call did, ``stop_reason`` why its last replay failed,
    ``held`` why newer writes must wait: each the calling thread's own, so one
    client may be shared by threads (a drain of one must not make another's
    write wait, nor let it overtake the entries its own drain stopped at).
    """

    def __init__(self, settings: ClientSettings, *, transport: httpx2.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, heartbeat: bool = False) -> None:
        super().__init__(settings, transport=transport, sleep=sleep, heartbeat=heartbeat)
        root = settings.project_root
        self.queue = SoftfailQueue(settings.queue_file, git_root=project.git_root(root) if root else None)
        self.actor = _actor(settings.token, settings.session)

    @property
    def last_drain(self) -> Drained | None:
        """What the last drain before a call of this thread did (:meth:`CoordClient.call
        <coordhub.client.client.CoordClient.call>`); None before any."""
        drained: Drained | None = getattr(self._calls, "last_drain", None)
        return drained

    @property
    def held(self) -> str | None:
        """Why this thread's last drain stopped at one of this client's queued writes, when a newer write must be
        queued behind it rather than sent (it would reach the hub first); None when nothing holds newer writes back.
        :attr:`Drained.held <coordhub.client.queue.Drained.held>` of the drain's own answer says the same."""
        held: str | None = getattr(self._calls, "held", None)
        return held

    @property
    def stop_reason(self) -> str | None:
        """Why this thread's last replay failed (None: it did not, or none was made)."""
        reason: str | None = getattr(self._calls, "stop_reason", None)
        return reason

    def replay(self, entry: Entry) -> str:
        """Send one queued entry with its key and queue time: ``applied``, ``rejected`` (4xx but 423 and 429), or
        ``retry`` (also halted, 423, rate-limited, 429, or answered by no hub: a redirect), ``retry-reached`` or
        ``failed`` (see :meth:`SoftfailQueue.drain`).

        A 503 with ``Retry-After`` is waited out once, as for any write.
        ``stop_reason`` then says why it failed.
        """
        try:
            result = self._replayed(entry)
        except HubError as err:
            # A halt (keep the write for after `coord resume`) or a rate limit is temporary: a 429 refused the
            # request before it was looked at, and moving it to the rejected file would drop a write for good.
            # A newer write the per-token budget lets through a moment later must not overtake it. A daily quota's
            # 429 (write_quota, turn_quota: until the next UTC day) holds nothing back: it refuses only writes of
            # its kind, and a message would wait behind a todo for the rest of the day.
            if err.status == 429 and err.code == "rate_limited":
                self._calls.stop_reason = self._calls.held = f"the hub is rate-limiting this session ({err.message})"
            if err.status < 400:  # not the hub's answer (a redirect): not applied, kept for when the URL is right
                self._calls.stop_reason = self._calls.held = err.message
            return RETRY if err.status in (423, 429) or err.status < 400 else REJECTED
        if isinstance(result, Failure):
            self._calls.stop_reason = result.reason
            if result.holds():
                self._calls.held = result.reason
            return outcome(result)
        return APPLIED

    def _replayed(self, entry: Entry) -> Any:
        """``entry`` sent with its key and queue time (:meth:`_attempt`), and once more as a hub from before one of
        its fields takes it (:func:`~coordhub.client.downgrade.downgraded`), with the same key: the refused first
        request left no record under it, and a later replay of the entry is answered the message already sent.
        Raises the last ``HubError``."""
        try:
            return self._attempt(entry.method, entry.path, entry.params, entry.body, entry.idempotency_key,
                                 entry.ts or None)
        except HubError as err:
            again = downgraded(entry.method, entry.path, entry.body, err)
            if again is None:
                raise
            return self._attempt(entry.method, entry.path, entry.params, again, entry.idempotency_key,
                                 entry.ts or None)

    def sync(self) -> Drained:
        """Drain this client's entries of the softfail queue in order (see :meth:`SoftfailQueue.drain`); its
        ``held`` says whether newer writes must wait behind the entry it stopped at, and why."""
        self._calls.held = self._calls.stop_reason = None
        drained = self.queue.drain(self.replay, self.settings.url, self.actor, retention_hours=self._retention_hours)
        return drained._replace(held=self.held)

    def _retention_hours(self) -> float | None:
        """How long the hub keeps idempotency keys, as its ``/health`` says (None: forever).

        A hub that does not say (an older one) or cannot be asked is assumed
        to keep them :data:`~coordhub.client.queue.DEFAULT_MAX_AGE_HOURS`; a
        value that is no positive number, or is :data:`MAX_RETENTION_HOURS`
        or more, means forever.
        """
        try:
            health = self.hub_health()
        except Unreachable:
            return DEFAULT_MAX_AGE_HOURS
        if "idempotency_retention_hours" not in health:
            return DEFAULT_MAX_AGE_HOURS
        hours = health["idempotency_retention_hours"]
        # past a million hours (a century) is forever: float() of a longer int (10**400) raises OverflowError
        return float(hours) if isinstance(hours, int | float) and 0 < hours < MAX_RETENTION_HOURS else None


def outcome(failure: Failure) -> str:
    """What a drain makes of this ``failure`` of a replay (see :meth:`SoftfailQueue.drain`): counted
    (:data:`~coordhub.client.queue.FAILED`) only when the hub answered this write with an error of its own, not
    when it could not be reached, its database is down, or a gateway says it is down
    (:data:`~coordhub.client.transport.UNAVAILABLE`)."""
    if failure.holds():
        return RETRY_REACHED if failure.reached else RETRY  # the whole hub is down, not this entry
    return FAILED


def _actor(token: str | None, session: str | None) -> str | None:
    """Who queues writes: a prefix of the token's SHA-256 (never the token), else the session."""
    if token:
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    return f"session:{session}" if session else None
