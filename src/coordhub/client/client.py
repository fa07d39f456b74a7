"""The coordhub client (synchronous), with seed 001's softfail behaviour.

:class:`CoordClient` is one session's client: its requests
(:mod:`coordhub.client.transport`, which also says how the client settles its
credential), the replays of its softfail queue (:mod:`coordhub.client.softfail`),
the event stream (:mod:`coordhub.client.events`) and one method per endpoint
(:mod:`coordhub.client.calls`, :mod:`coordhub.client.conversations`, and here
the lists read page by page).

Writes never block work: on a network error, a timeout or a 5xx answer, a
mutating call is appended to the softfail queue with its idempotency key and
the call returns :class:`Queued`. A 503 with ``Retry-After`` is waited out once
(at most :data:`~coordhub.client.transport.MAX_RETRY_WAIT` seconds) and retried
before queueing; so is each replay of a queued write. Before any call, a non-empty queue is drained
in order, so queued writes reach the hub before newer ones, within the
call's own time budget (``timeout`` from the start of the call: the drain's
requests, and after a drain that stopped the call's own request, share one
deadline, so a hung hub costs a call about one timeout, not one for the drain
and another for the call); when the drain
has to stop at one of this client's entries because the hub could not be
reached (connection refused, timeout, dropped connection) or said it is
unavailable (503, or a gateway's 502 or 504), a new queueable write is
queued behind them without being sent, never sent ahead of them (it could
not be sent anyway); :mod:`coordhub.client.softfail` says when a replay
holds newer writes back and when a stuck entry is given up. ``sync()`` drains
explicitly. Reads cannot be queued: an unreachable hub raises :class:`Unreachable`; they, and writes that
are never queued (``queue=False``), are still sent after a stopped drain.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from coordhub.client import trust
from coordhub.client.calls import FleetCalls
from coordhub.client.events import EventStream
from coordhub.client.outcomes import HubError, Leases, Queued, Thread, Unreachable
from coordhub.client.queue import Entry
from coordhub.client.softfail import Softfail
from coordhub.client.transport import Failure
from coordhub.client.wire import NEXT_AFTER_FENCE, NEXT_AFTER_SEQ, unsafe_path, whole_number

LEASE_PAGE = 500  # leases the hub answers per request at most (coordhub.core.leasequeries.PAGE)
MAX_LISTED = 10_000  # leases one locks() call reads at most, by default


class CoordClient(Softfail, EventStream, FleetCalls):
    """Talks to one hub as one session. Use as a context manager, or call :meth:`close`.

    ``CoordClient(settings, *, transport=None, sleep=time.sleep, heartbeat=False)``: the arguments are
    :class:`~coordhub.client.transport.Transport`'s.
    """

    def __enter__(self) -> CoordClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
             idempotency_key: str | None = None, queue: bool = True, fields: dict[str, str] | None = None) -> Any:
        """Call the hub. Reads return the body or raise ``Unreachable``; writes may return :class:`Queued`.

        ``queue=False`` makes a write behave like a read when the hub is
        unreachable (raise instead of queueing). Raises :class:`HubError` when
        the hub refuses the request (4xx). ``fields``, when given, receives the
        header fields of the answer (names lower-cased; left empty for a queued write).

        A non-empty queue is drained first, within the call's time budget: the
        drain and, when it stopped short (the hub unreachable, unavailable or
        too slow), this request share one deadline, ``timeout`` seconds from
        now; past it nothing more is sent (a read raises ``Unreachable``, a
        write is queued). After a drain the hub answered in full, this request
        gets a whole ``timeout`` of its own. The budget, and what the drain left
        (:attr:`last_drain`, :attr:`held`), are the calling thread's: one client
        may be shared by threads.
        """
        bad = unsafe_path(path)
        if bad is not None:
            raise HubError(400, "invalid_path", bad)
        if len(self.queue):
            with self.within(time.monotonic() + self.settings.timeout):
                drained = self._calls.last_drain = self.sync()
                if drained.stopped is not None:  # the hub did not answer it all: this request gets what is left
                    return self.request(method, path, params=params, body=body, idempotency_key=idempotency_key,
                                        queue=queue, fields=fields, held=drained.held)
        return self.request(method, path, params=params, body=body, idempotency_key=idempotency_key, queue=queue,
                            fields=fields)

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                idempotency_key: str | None = None, queue: bool = True, fields: dict[str, str] | None = None,
                held: str | None = None) -> Any:
        """:meth:`call`'s own request, without the drain before it: for a caller that drained this client's queue
        itself (the seed-002 client), within the time budget of :meth:`within` if it gives one. ``held`` is why
        that drain stopped at an entry a newer write must wait behind (:attr:`Drained.held
        <coordhub.client.queue.Drained.held>`; None: nothing holds it back): a queueable write is then queued
        behind it unsent. Answers and raises as :meth:`call` (a 503's ``Retry-After`` waited out once within the
        budget, a write the hub could not take queued); ``path`` must have been checked (:func:`unsafe_path`)."""
        if method == "GET" or not queue:
            result = self._attempt(method, path, params, body, None if method == "GET" else str(uuid.uuid4()),
                                   fields=fields)
            if isinstance(result, Failure):
                raise Unreachable(result.reason, sent=result.reached)
            return result
        key = idempotency_key or str(uuid.uuid4())
        if held is not None:  # sent now, it would reach the hub before the writes still queued: queue it behind
            result = Failure(f"{held}; earlier queued writes go first", reached=False)
        else:
            result = self._attempt(method, path, params, body, key, fields=fields)
        if isinstance(result, Failure):
            entry = Entry(method, path, body, key, params, self.settings.session, actor=self.actor,
                          hub=trust.origin(self.settings.url), reached=result.reached)
            return Queued(method, path, key, self.queue.append(entry), result.reason)
        return result

    # -- the API: the hub's health, and the lists read page by page ---------------

    def health(self) -> Any:
        """``GET /health`` (no token needed, none sent); raises as :meth:`hub_health`."""
        return self.hub_health()

    def locks(self, project_key: str | None = None, resource: str | None = None, *, session_id: str | None = None,
              after_fence: int = 0, max_leases: int = MAX_LISTED) -> Leases:
        """Live leases (of ``project_key``, overlapping ``resource``, held by ``session_id``), oldest grant first
        after ``after_fence``, every page of them up to ``max_leases``.

        The hub answers at most 500 leases (and about 4 MiB) per request and
        names the fence to page on with (``Coord-Next-After-Fence``); this
        follows it, one request per page, until the list is complete or holds
        ``max_leases`` (default :data:`MAX_LISTED`, 10,000: one call reads at
        most 20 pages). The answer's ``next_after_fence`` is None when nothing
        was left out, else the fence to continue with (``after_fence=``). Pages
        are read one after another, not as one snapshot: a lease granted
        meanwhile may be missing, one ended meanwhile may still be listed;
        none is listed twice. Raises ``ValueError`` for ``max_leases`` < 1.
        """
        if max_leases < 1:
            raise ValueError(f"max_leases must be at least 1, not {max_leases}")
        out = Leases()
        after = after_fence
        while True:
            fields: dict[str, str] = {}
            left = max_leases - len(out)
            rows = self.call("GET", "/api/coord/locks", fields=fields, params={
                "project_key": project_key, "resource": resource, "session_id": session_id,
                "after_fence": after or None, "limit": left if left < LEASE_PAGE else None})
            if not isinstance(rows, list):
                raise Unreachable(f"the hub at {self.settings.url} answered a list of leases with "
                                  f"{type(rows).__name__}, not a list")
            out.extend(rows)
            following = whole_number(fields.get(NEXT_AFTER_FENCE))
            # the last page (an older hub: the only one); a hub's pages are never empty, and a hostile one naming a
            # next page after each empty one would be read for ever
            if not rows or following is None or following <= after:
                return out
            after = following
            if len(out) >= max_leases:
                out.next_after_fence = after
                return out

    def thread(self, thread_id: str, after_seq: int = 0, limit: int = 100) -> Thread:
        """The messages of thread ``thread_id`` this session sent, was sent, or that were broadcast, oldest first
        from ``seq > after_seq``: one page of at most ``limit`` (≤ 500) and about 4 MiB of them.

        A thread a reply started is named by the id of the message it answered. Empty when the thread holds no
        message this session may read (or does not exist). Raises :class:`HubError` when the hub refuses (422
        for a ``limit`` out of range), or 422 ``invalid`` here, with nothing sent, for an empty ``thread_id``;
        :class:`Unreachable` when it cannot be asked or answers no list.
        """
        if not thread_id:  # the hub reads an empty query value as none given: it would answer the inbox's history
            raise HubError(422, "invalid", "thread_id must not be empty: name a thread (a message's thread_id, or "
                                           "the id of the message a reply answered)")
        fields: dict[str, str] = {}
        rows = self.call("GET", "/api/coord/messages", fields=fields, params={
            "thread_id": thread_id, "after_seq": after_seq or None, "limit": limit})
        if not isinstance(rows, list):
            raise Unreachable(f"the hub at {self.settings.url} answered a thread with {type(rows).__name__}, "
                              "not a list")
        page = Thread(rows)
        following = whole_number(fields.get(NEXT_AFTER_SEQ))
        # a hub's next page starts past this one: a seq that does not move on would be read for ever
        page.next_after_seq = following if rows and following is not None and following > after_seq else None
        return page
