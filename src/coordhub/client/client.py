"""The coordhub client (synchronous), with seed 001's softfail behaviour.

Credentials (issue 7 points 1, 2, 7): before its first request the client
settles what identifies it, by the rules in :mod:`coordhub.client.credentials`
(shared with the CLI's fast path): a session token is sent only to a URL
trusted for it; the hub's admin token found on disk only to a URL the user
chose (never one a project's identity.json names, unless trusted for it) and
only after ``/health`` of the target answers the hub id written beside it; with no token, ``/health``
says whether the hub needs one (then
:class:`~coordhub.client.settings.NoCredential` says how to get one) or is a
``--no-auth`` hub (then the session is sent as ``X-Coord-Session``).

Writes never block work: on a network error, a timeout or a 5xx answer, a
mutating call is appended to the softfail queue with its idempotency key and
the call returns :class:`Queued`. A 503 with ``Retry-After`` is waited out once
(at most :data:`MAX_RETRY_WAIT` seconds) and retried before queueing; so is
each replay of a queued write. Before any call, a non-empty queue is drained
in order, so queued writes reach the hub before newer ones, within the
call's own time budget (``timeout`` from the start of the call: the drain's
requests, and after a drain that stopped the call's own request, share one
deadline, so a hung hub costs a call about one timeout, not one for the drain
and another for the call); when the drain
has to stop at one of this client's entries because the hub could not be
reached (connection refused, timeout, dropped connection) or said it is
unavailable (503, or a gateway's 502 or 504), a new queueable write is
queued behind them without being sent, never sent ahead of them (it could
not be sent anyway). When the hub
answered another 5xx to the queued write (a hub bug), new writes are sent as
before, and the stuck entry is given up after
:data:`~coordhub.client.queue.MAX_FAILED_REPLAYS` such replays (moved to the
rejected file); a 502, 503 or 504 (a gateway whose hub is down) and the hub's
own ``database_unavailable`` are an outage, never counted. ``sync()`` drains
explicitly. Reads cannot be queued: an unreachable hub raises :class:`Unreachable`; they, and writes that
are never queued (``queue=False``), are still sent after a stopped drain.

Each queued entry records whether an attempt may have reached the hub
(``reached``: a timeout, a connection dropped after sending, a 5xx) or
certainly did not (connection refused, or queued behind others unsent); only
the former is set aside as expired when older than the hub keeps keys.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from coordhub import __version__
from coordhub.client import credentials, project, trust
from coordhub.client.calls import FleetCalls
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
from coordhub.client.wire import MAX_ANSWER, NEXT_AFTER_FENCE, NEXT_AFTER_SEQ, unsafe_path, whole_number

if TYPE_CHECKING:  # httpx2 is imported on the first request: it costs more start-up than the whole CLI
    import httpx2

MAX_RETRY_WAIT = 60.0
QUEUED_AT_HEADER = "X-Coord-Queued-At"
HEARTBEAT_HEADER = "X-Coord-Heartbeat"
# the hub is down or unavailable, not failing this request: a gateway's 502 (no hub behind it), 503 (none available)
# or 504 (the hub did not answer in time); replays answered so are never counted toward giving up (MAX_FAILED_REPLAYS)
UNAVAILABLE = frozenset({502, 503, 504})
LEASE_PAGE = 500  # leases the hub answers per request at most (coordhub.core.leases.PAGE)
MAX_LISTED = 10_000  # leases one locks() call reads at most, by default
MAX_RETENTION_HOURS = 1e6  # an advertised idempotency retention this long or longer is taken as forever


class HubError(Exception):
    """The hub answered with an error (4xx, or 5xx on a read), or the URL with a status no hub answers (a 3xx
    redirect: code ``not_applied``). ``code`` is the envelope's code."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.body = body


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
    """Live leases as :meth:`CoordClient.locks` read them, oldest grant first.

    ``next_after_fence`` is None when the list holds every live lease that
    matched; otherwise more follow, and ``locks(after_fence=next_after_fence)``
    continues the list where this one stopped.
    """

    next_after_fence: int | None = None


class Thread(list[dict[str, Any]]):
    """One page of a thread's messages as :meth:`CoordClient.thread` read it, oldest first.

    ``next_after_seq`` is None when the page ends the thread as this session
    may read it; otherwise more follow, and ``thread(thread_id,
    after_seq=next_after_seq)`` continues where this page stopped.
    """

    next_after_seq: int | None = None


@dataclass(frozen=True)
class _Failure:
    reason: str
    retry_after: float | None = None
    reached: bool = True  # the request may have reached the hub (False: it was certainly not sent)
    status: int | None = None  # the 5xx the hub (or a gateway) answered; None: no answer
    code: str | None = None  # the error envelope's code, if any

    def holds(self) -> bool:
        """Whether newer writes must wait behind the entry this failed: the hub is unreachable or unavailable (an
        outage, :meth:`outcome`: a gateway's 502 or 504 too, which stops the drain as a 503 does)."""
        return self.status is None or self.status in UNAVAILABLE or self.code == "database_unavailable"

    def outcome(self) -> str:
        """What a drain makes of this failure of a replay (see :meth:`SoftfailQueue.drain`): counted
        (:data:`~coordhub.client.queue.FAILED`) only when the hub answered this write with an error of its own, not
        when it could not be reached, its database is down, or a gateway says it is down (:data:`UNAVAILABLE`)."""
        if self.holds():
            return RETRY_REACHED if self.reached else RETRY  # the whole hub is down, not this entry
        return FAILED


def dropped(exc: BaseException) -> bool:
    """Whether ``exc`` (an ``httpx2`` transport error) is a connection that dropped under a request: the hub closed
    it (or reset it) as the request went out or before any answer. That is the race of a kept-alive connection
    reused just as the hub's idle timeout closes it (``keepalive_timeout``, 5 s by default, as long as the HTTP
    client's own): one more attempt on a new connection is what the clients make of it, for a GET or a keyed write
    only (RFC 9110 §9.2.2: a request that may be repeated)."""
    import httpx2

    return isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError))


class CoordClient(FleetCalls):
    """Talks to one hub as one session. Use as a context manager, or call :meth:`close`."""

    def __init__(self, settings: ClientSettings, *, transport: httpx2.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, heartbeat: bool = False) -> None:
        self.settings = settings
        root = settings.project_root
        self.queue = SoftfailQueue(settings.queue_file, git_root=project.git_root(root) if root else None)
        self.actor = _actor(settings.token, settings.session)
        self.last_drain: Drained | None = None
        self._held: str | None = None  # why the last drain stopped at an entry of ours, if newer writes must wait
        self.stop_reason: str | None = None  # why the last replay failed
        self._sleep = sleep
        self._deadline: float | None = None  # time.monotonic() the running call() must be done by (see call)
        self._identity: dict[str, str] | None = None
        self._transport = transport
        # One in-band heartbeat per client (the CLI: per invocation), on its first request; see api/activity.py.
        self._heartbeat = heartbeat
        self._client: httpx2.Client | None = None

    @property
    def _http(self) -> httpx2.Client:
        """The HTTP connection pool, created (and httpx2 imported) by the first request; it carries no credential
        (:meth:`identity_headers` adds one per request)."""
        if self._client is None:
            import httpx2

            # identity: an answer is read unencoded, so MAX_ANSWER bounds what it unpacks to (see _fetch)
            headers = {"User-Agent": f"coordhub/{__version__}", "Accept-Encoding": "identity"}
            self._client = httpx2.Client(base_url=self.settings.url, headers=headers, timeout=self.settings.timeout,
                                         transport=self._transport, verify=_tls(self.settings.url))
        return self._client

    def __enter__(self) -> CoordClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool (if a request opened one)."""
        if self._client is not None:
            self._client.close()

    # -- transport --------------------------------------------------------------

    def hub_health(self) -> dict[str, Any]:
        """``GET /health`` without any credential; the answer even when degraded (503). Raises ``Unreachable``, and
        :class:`~coordhub.client.trust.Untrusted` or :class:`NoCredential` for a hub this client may not ask
        anything (:func:`coordhub.client.credentials.check_may_ask`: nothing is sent)."""
        credentials.check_may_ask(self.settings)
        return self._health()

    def _health(self) -> dict[str, Any]:
        """:meth:`hub_health` once :func:`~coordhub.client.credentials.identity_headers` has checked the URL."""
        import httpx2

        try:
            response = self._fetch("GET", "/health")
        except httpx2.TimeoutException:
            raise Unreachable(f"hub at {self.settings.url} timed out") from None
        except httpx2.RequestError as exc:  # a transport error, or an answer _fetch does not read
            raise Unreachable(f"cannot reach {self.settings.url} ({type(exc).__name__})") from None
        data = _json(response)
        if response.status_code not in (200, 503) or not isinstance(data, dict) or "status" not in data:
            raise Unreachable(f"{self.settings.url} answered /health with {response.status_code}: not a coordhub hub")
        return data

    def identity_headers(self) -> dict[str, str]:
        """The headers that identify this client, settled once (see the module docstring).

        Raises :class:`NoCredential` or :class:`~coordhub.client.trust.Untrusted`
        (nothing was sent), or ``Unreachable`` when ``/health`` had to be asked
        and could not be.
        """
        if self._identity is None:
            self._identity = credentials.identity_headers(self.settings, self._health)
        return self._identity

    def _send(self, method: str, path: str, params: dict[str, Any] | None, body: Any,
              key: str | None, queued_at: str | None = None, fields: dict[str, str] | None = None) -> Any | _Failure:
        """One attempt: the decoded 2xx body, a ``_Failure`` (retryable), or ``HubError`` raised (4xx).

        ``fields``, when given, receives the answer's header fields (names lower-cased)."""
        import httpx2

        if self._left() == 0:  # nothing is sent that could not be answered in time
            return _Failure(f"the hub at {self.settings.url} did not answer the queued writes within the timeout "
                            f"({self.settings.timeout:g} s)", reached=False)
        try:
            headers = dict(self.identity_headers())
        except Unreachable as exc:
            return _Failure(str(exc), reached=False)  # nothing was sent
        if key:
            headers["Idempotency-Key"] = key
        if queued_at:
            headers[QUEUED_AT_HEADER] = queued_at
        if self._heartbeat:
            headers[HEARTBEAT_HEADER] = "1"
            self._heartbeat = False
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        sent = False  # a first attempt may have reached the hub: no later failure makes the request unsent
        try:
            try:
                response = self._fetch(method, path, params=clean or None, json=body, headers=headers)
            except httpx2.TransportError as exc:
                if not (dropped(exc) and (key or method == "GET")):
                    raise
                # A kept-alive connection the hub closed as the request went out: once more, on a new one (a GET or
                # keyed request: no second effect). The first may have been applied (review: a hub that committed
                # it and went down made the retry's ConnectError mark it unsent, replayed past its key's life).
                sent = True
                response = self._fetch(method, path, params=clean or None, json=body, headers=headers)
        except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.UnsupportedProtocol) as exc:
            return _Failure(f"cannot reach {self.settings.url} ({type(exc).__name__})", reached=sent)
        except httpx2.TimeoutException:
            return _Failure(f"the hub at {self.settings.url} did not answer in time")
        except httpx2.TransportError as exc:  # e.g. the connection dropped after the request was sent
            return _Failure(f"cannot reach {self.settings.url} ({type(exc).__name__})")
        except httpx2.DecodingError as exc:  # an answer _fetch does not read: it may have been applied
            return _Failure(f"the answer of the hub at {self.settings.url} could not be read ({exc})")
        if response.status_code >= 500:
            reason = f"hub answered {response.status_code}"
            data = _json(response)
            error = data.get("error") if isinstance(data, dict) else None
            code = error.get("code") if isinstance(error, dict) and isinstance(error.get("code"), str) else None
            if response.status_code == 503 and "database" in response.text:
                reason = "the hub's database is unavailable (503)"
            return _Failure(reason, _retry_after(response.headers.get("Retry-After")), status=response.status_code,
                            code=code)
        if not 200 <= response.status_code < 300 and response.status_code < 400:
            # A redirect (a proxy sending http to https) or another answer that is no hub's: the write was not
            # applied, and the client follows no redirect (its token would go where the answer says)
            where = response.headers.get("Location", "")
            raise HubError(response.status_code, "not_applied",
                           f"{self.settings.url} answered {response.status_code}"
                           + (f" (to {where[:200]!r})" if where else "") + ", not the hub's answer: nothing was "
                           "done; the client follows no redirect, point --url (or COORD_URL, identity.json "
                           "coord_api) at the hub itself")
        data = _json(response)
        if response.status_code >= 400:
            raise _refusal(response.status_code, data, response.text)
        if fields is not None:
            fields.update((k.lower(), v) for k, v in response.headers.items())
        return data

    def _fetch(self, method: str, path: str, **request: Any) -> httpx2.Response:
        """One request (``request``: ``httpx2.Client.request``'s arguments) and its whole answer, read within bounds.

        A hostile hub, or a man-in-the-middle on plain http, must hold the
        client neither without end nor with its memory: the answer is read
        until the client's timeout has passed since the request started (a
        drip of bytes, each within ``httpx2``'s per-read timeout, is then cut
        off: at most twice the timeout in all), only up to
        :data:`~coordhub.client.wire.MAX_ANSWER` bytes, and only unencoded
        (``Accept-Encoding: identity`` is asked for: a gzip answer unpacks to
        a thousand times its size). Within a call's time budget (:meth:`call`)
        the request gets only what is left of it, and nothing is sent once it
        is spent (``httpx2.ConnectTimeout``). Raises ``httpx2.ReadTimeout`` past the
        time, ``httpx2.DecodingError`` for an answer larger or encoded, and
        whatever ``httpx2`` raises.
        """
        import httpx2

        left = self._left()
        if left == 0:
            raise httpx2.ConnectTimeout("no time left of the call's timeout")
        timeout = self.settings.timeout if left is None else min(left, self.settings.timeout)
        deadline = time.monotonic() + timeout  # from the request's start: a late head must not restart the clock
        with self._http.stream(method, path, timeout=timeout, **request) as response:
            return self._whole(response, deadline)

    def _left(self) -> float | None:
        """Seconds left of the running call's time budget (0 when spent), or None outside one."""
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def _whole(self, response: httpx2.Response, deadline: float) -> httpx2.Response:
        """``response`` (streamed, its head read) with its whole body, read by ``deadline`` (``time.monotonic()``)
        within the bounds of :meth:`_fetch`, which says what it raises."""
        import httpx2

        coding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if coding not in ("", "identity"):
            raise httpx2.DecodingError(f"the answer is {coding[:40]!r}-encoded, which this client did not ask for")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():  # identity-encoded (checked): the bytes as sent
            size += len(chunk)
            if size > MAX_ANSWER:
                raise httpx2.DecodingError(f"the answer is larger than {MAX_ANSWER} bytes")
            if time.monotonic() > deadline:
                raise httpx2.ReadTimeout(f"the answer took longer than {self.settings.timeout:g} s")
            chunks.append(chunk)
        return httpx2.Response(response.status_code, headers=response.headers, content=b"".join(chunks),
                               request=response.request)

    def _attempt(self, method: str, path: str, params: dict[str, Any] | None, body: Any,
                 key: str | None, queued_at: str | None = None, fields: dict[str, str] | None = None) -> Any | _Failure:
        result = self._send(method, path, params, body, key, queued_at, fields)
        left = self._left()
        if isinstance(result, _Failure) and result.retry_after is not None and (
                left is None or min(result.retry_after, MAX_RETRY_WAIT) < left):  # a wait past the budget: no retry
            self._sleep(min(result.retry_after, MAX_RETRY_WAIT))  # seed 001: wait once, then retry
            first = result
            result = self._send(method, path, params, body, key, queued_at, fields)
            if isinstance(result, _Failure) and first.reached and not result.reached:
                result = _Failure(result.reason, result.retry_after, True, result.status, result.code)
        return result

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
        gets a whole ``timeout`` of its own.
        """
        bad = unsafe_path(path)
        if bad is not None:
            raise HubError(400, "invalid_path", bad)
        try:
            return self._call(method, path, params, body, idempotency_key, queue, fields)
        finally:
            self._deadline = None

    def _call(self, method: str, path: str, params: dict[str, Any] | None, body: Any, idempotency_key: str | None,
              queue: bool, fields: dict[str, str] | None) -> Any:
        """:meth:`call` once its path is checked; it leaves ``_deadline`` set for :meth:`call` to clear."""
        held = None
        if len(self.queue):
            self._deadline = time.monotonic() + self.settings.timeout
            self.last_drain = self.sync()
            held = self._held
            if self.last_drain.stopped is None:
                self._deadline = None
        if method == "GET" or not queue:
            result = self._attempt(method, path, params, body, None if method == "GET" else str(uuid.uuid4()),
                                   fields=fields)
            if isinstance(result, _Failure):
                raise Unreachable(result.reason, sent=result.reached)
            return result
        key = idempotency_key or str(uuid.uuid4())
        if held is not None:  # sent now, it would reach the hub before the writes still queued: queue it behind
            result = _Failure(f"{held}; earlier queued writes go first", reached=False)
        else:
            result = self._attempt(method, path, params, body, key, fields=fields)
        if isinstance(result, _Failure):
            entry = Entry(method, path, body, key, params, self.settings.session, actor=self.actor,
                          hub=trust.origin(self.settings.url), reached=result.reached)
            return Queued(method, path, key, self.queue.append(entry), result.reason)
        return result

    def replay(self, entry: Entry) -> str:
        """Send one queued entry with its key and queue time: ``applied``, ``rejected`` (4xx but 423 and 429), or
        ``retry`` (also halted, 423, rate-limited, 429, or answered by no hub: a redirect), ``retry-reached`` or
        ``failed`` (see :meth:`SoftfailQueue.drain`).

        A 503 with ``Retry-After`` is waited out once, as for any write.
        ``stop_reason`` then says why it failed.
        """
        try:
            result = self._attempt(entry.method, entry.path, entry.params, entry.body, entry.idempotency_key,
                                   entry.ts or None)
        except HubError as err:
            # A halt (keep the write for after `coord resume`) or a rate limit is temporary: a 429 refused the
            # request before it was looked at, and moving it to the rejected file would drop a write for good.
            # A newer write the per-token budget lets through a moment later must not overtake it. A daily quota's
            # 429 (write_quota, turn_quota: until the next UTC day) holds nothing back: it refuses only writes of
            # its kind, and a message would wait behind a todo for the rest of the day.
            if err.status == 429 and err.code == "rate_limited":
                self.stop_reason = self._held = f"the hub is rate-limiting this session ({err.message})"
            if err.status < 400:  # not the hub's answer (a redirect): not applied, kept for when the URL is right
                self.stop_reason = self._held = err.message
            return RETRY if err.status in (423, 429) or err.status < 400 else REJECTED
        if isinstance(result, _Failure):
            self.stop_reason = result.reason
            if result.holds():
                self._held = result.reason
            return result.outcome()
        return APPLIED

    def sync(self) -> Drained:
        """Drain this client's entries of the softfail queue in order (see :meth:`SoftfailQueue.drain`)."""
        self._held = self.stop_reason = None
        return self.queue.drain(self.replay, self.settings.url, self.actor, retention_hours=self._retention_hours)

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

    # -- the API, one method per endpoint -----------------------------------------

    def events(self, after: int | None = None, kinds: str | None = None, project_key: str | None = None,
               to_session: str | None = None, reconnect: bool = True,
               on_connect: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
        """Follow the hub's event stream (SSE), yielding events as dicts, forever.

        Resumes where it left off after a dropped or ended connection (``Last-Event-ID``: the last id the hub
        sent, or before any the id the hub said the stream started after, ``X-Coord-Cursor``),
        so nothing is missed or repeated. It asks for checkpoints (``?checkpoints=1``): a frame with an id and
        no data is no event (WHATWG HTML, server-sent events), but its id is where a resume starts, so a
        narrow filter does not look through again what the hub already passed over (an older hub ignores the
        parameter). Raises :class:`Unreachable` when the hub cannot be reached and ``reconnect`` is False, or
        when an id is no number; ``HubError`` on a 4xx.
        ``on_connect`` is called each time the hub has accepted the stream: from
        then on every new event reaches this iterator.
        """
        import httpx2

        cursor = after
        params = {"kinds": kinds, "project_key": project_key, "to_session": to_session, "checkpoints": "1"}
        while True:
            try:
                headers = dict(self.identity_headers())
            except Unreachable:
                if not reconnect:
                    raise
                self._sleep(1.0)
                continue
            if cursor is not None:
                headers["Last-Event-ID"] = str(cursor)
            try:
                with self._http.sse("/api/coord/events", params={k: v for k, v in params.items() if v},
                                    headers=headers, timeout=httpx2.Timeout(self.settings.timeout, read=60.0)) as src:
                    if src.response.status_code >= 400:  # its body read within bounds, as any answer's (_fetch)
                        try:
                            refused = self._whole(src.response, time.monotonic() + self.settings.timeout)
                        except httpx2.DecodingError as exc:
                            raise Unreachable(f"the event stream from {self.settings.url} was refused with an "
                                              f"answer that could not be read ({exc})") from None
                        raise _refusal(refused.status_code, _json(refused), refused.text)
                    if cursor is None:  # "from now": the hub says which event now is, so a reconnect misses nothing
                        cursor = whole_number(src.response.headers.get("X-Coord-Cursor"))
                    if on_connect is not None:
                        on_connect()
                    for event in src:
                        if event.id:
                            cursor = whole_number(event.id)
                            if not event.data:  # a checkpoint: no event, its id the cursor to resume from
                                _checkpoint(cursor, self.settings.url)
                                continue
                            yield _event(event.data, cursor, self.settings.url)
            except httpx2.TransportError as exc:
                if not reconnect:
                    raise Unreachable(f"event stream from {self.settings.url} lost ({type(exc).__name__})") from exc
                self._sleep(1.0)

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


def _tls(url: str) -> Any:
    """``verify`` for httpx2: the CA bundle for an https hub; none for a plain-http one.

    Every request goes to the hub's own URL, so a plain-http hub never uses TLS;
    loading the CA bundle anyway cost about 45 ms of CPU per command. The
    context given instead trusts no CA at all (and still checks host names),
    so it could only fail closed.
    """
    if not url.lower().startswith("http:"):
        return True
    import ssl

    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _actor(token: str | None, session: str | None) -> str | None:
    """Who queues writes: a prefix of the token's SHA-256 (never the token), else the session."""
    if token:
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    return f"session:{session}" if session else None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    seconds = whole_number(value.strip(), digits=30)  # ASCII digits only: "²" is a digit
    if seconds is not None:
        return float(seconds)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _json(response: httpx2.Response) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):  # RecursionError: nested too deep (json raises it, not a ValueError)
        return {"error": {"code": "bad_response", "message": response.text[:200]}}


def _refusal(status: int, data: Any, text: str) -> HubError:
    """The :class:`HubError` of a refusal (4xx) whose decoded body is ``data`` (the error envelope, docs/api.md) and
    raw text ``text``; any other shape (a proxy's page, a hostile answer) gives code ``error`` and the text's start."""
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    code, message = error.get("code"), error.get("message")
    return HubError(status, code if isinstance(code, str) and code else "error",
                    message if isinstance(message, str) and message else text[:200], data)


def _checkpoint(cursor: int | None, url: str) -> None:
    """Check a checkpoint frame's id (``cursor``): ``Unreachable`` when it is no event id, as for an event."""
    if cursor is None:
        raise Unreachable(f"the event stream from {url} sent a checkpoint that is not the hub's (its id is no number)")


def _event(data: str, cursor: int | None, url: str) -> dict[str, Any]:
    """An event of the hub's stream from its ``data`` field; ``Unreachable`` when it is no JSON object or its id
    (``cursor``) no event id: a stream that cannot be resumed without a gap is not followed on."""
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        payload = None
    if cursor is None or not isinstance(payload, dict):
        raise Unreachable(f"the event stream from {url} sent an event that is not the hub's (its id is no number or "
                          "its data no JSON object)")
    return cast(dict[str, Any], payload)
