"""One request of the synchronous client to its hub, read within bounds, and what a failed attempt was.

:class:`Transport` is the base of :class:`coordhub.client.client.CoordClient` that speaks HTTP: its connection
pool, its identity, one attempt at a request (:meth:`Transport._send`, a retryable :class:`Failure` or the
answer) and the one wait a 503's ``Retry-After`` earns (:meth:`Transport._attempt`), all within the running
call's time budget. What the answers of a hub may cost is bounded the same way for the asyncio client
(:mod:`coordhub.client.aio`): :class:`Body` and :func:`dropped` serve both.

Credentials (issue 7 points 1, 2, 7): before its first request the client
settles what identifies it, by the rules in :mod:`coordhub.client.credentials`
(shared with the CLI's fast path): a session token is sent only to a URL
trusted for it; the hub's admin token found on disk only to a URL the user
chose (never one a project's identity.json names, unless trusted for it) and
only after ``/health`` of the target answers the hub id written beside it; with no token, ``/health``
says whether the hub needs one (then
:class:`~coordhub.client.settings.NoCredential` says how to get one) or is a
``--no-auth`` hub (then the session is sent as ``X-Coord-Session``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from coordhub import __version__
from coordhub.client import credentials
from coordhub.client.outcomes import HubError, Unreachable
from coordhub.client.settings import ClientSettings
from coordhub.client.wire import MAX_ANSWER, whole_number
from coordhub.headers import HEARTBEAT_HEADER, IDEMPOTENCY_HEADER, QUEUED_AT_HEADER

if TYPE_CHECKING:  # httpx2 is imported on the first request: it costs more start-up than the whole CLI
    import httpx2

MAX_RETRY_WAIT = 60.0
# the hub is down or unavailable, not failing this request: a gateway's 502 (no hub behind it), 503 (none available)
# or 504 (the hub did not answer in time); replays answered so are never counted toward giving up (MAX_FAILED_REPLAYS)
UNAVAILABLE = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Failure:
    """Why one attempt at a request got no answer to keep: retryable, so a write may be queued."""

    reason: str
    retry_after: float | None = None
    reached: bool = True  # the request may have reached the hub (False: it was certainly not sent)
    status: int | None = None  # the 5xx the hub (or a gateway) answered; None: no answer
    code: str | None = None  # the error envelope's code, if any

    def holds(self) -> bool:
        """Whether newer writes must wait behind the entry this failed: the hub is unreachable or unavailable (an
        outage, :func:`coordhub.client.softfail.outcome`: a gateway's 502 or 504 too, which stops the drain as a
        503 does)."""
        return self.status is None or self.status in UNAVAILABLE or self.code == "database_unavailable"


def dropped(exc: BaseException) -> bool:
    """Whether ``exc`` (an ``httpx2`` transport error) is a connection that dropped under a request: the hub closed
    it (or reset it) as the request went out or before any answer. That is the race of a kept-alive connection
    reused just as the hub's idle timeout closes it (``keepalive_timeout``, 5 s by default, as long as the HTTP
    client's own): one more attempt on a new connection is what the clients make of it, for a GET or a keyed write
    only (RFC 9110 §9.2.2: a request that may be repeated)."""
    import httpx2

    return isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError))


class Body:
    """An answer's body, taken chunk by chunk within the bounds of both clients on ``httpx2``: only unencoded
    (``Accept-Encoding: identity`` is asked for: a gzip answer unpacks to a thousand times its size) and at most
    :data:`~coordhub.client.wire.MAX_ANSWER` bytes (a hostile hub or a man-in-the-middle on plain http must not
    exhaust memory). Raises ``httpx2.DecodingError`` past either bound."""

    def __init__(self, headers: httpx2.Headers) -> None:
        """Start the body of an answer with header fields ``headers``; raises for one sent encoded."""
        coding = headers.get("Content-Encoding", "identity").strip().lower()
        if coding not in ("", "identity"):
            import httpx2

            raise httpx2.DecodingError(f"the answer is {coding[:40]!r}-encoded, which this client did not ask for")
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        """Take the next ``chunk`` (identity-encoded, checked: the bytes as sent); raises past the size bound."""
        self._size += len(chunk)
        if self._size > MAX_ANSWER:
            import httpx2

            raise httpx2.DecodingError(f"the answer is larger than {MAX_ANSWER} bytes")
        self._chunks.append(chunk)

    def content(self) -> bytes:
        """The whole body taken so far."""
        return b"".join(self._chunks)


class Transport:
    """Requests to one hub as one session, each attempt within the client's timeout (see the module docstring).

    ``transport`` replaces the network for the HTTP client; ``sleep`` is how a ``Retry-After`` is waited out;
    ``heartbeat`` sends one in-band heartbeat with the first request.

    One client may be shared by threads: the running call's time budget is the calling thread's own
    (:meth:`within`), never seen by a call of another thread.
    """

    def __init__(self, settings: ClientSettings, *, transport: httpx2.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, heartbeat: bool = False) -> None:
        self.settings = settings
        self._sleep = sleep
        # per thread, the running call's state (its deadline: the time.monotonic() it must be done by); a client
        # shared by threads would otherwise cut one thread's request short by another's spent budget, or end it
        self._calls = threading.local()
        self._opening = threading.Lock()  # two threads' first requests open one connection pool, not two
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

            with self._opening:
                if self._client is None:
                    # identity: an answer is read unencoded, so MAX_ANSWER bounds what it unpacks to (see _fetch)
                    headers = {"User-Agent": f"coordhub/{__version__}", "Accept-Encoding": "identity"}
                    self._client = httpx2.Client(base_url=self.settings.url, headers=headers,
                                                 timeout=self.settings.timeout, transport=self._transport,
                                                 verify=_tls(self.settings.url))
        return self._client

    def close(self) -> None:
        """Close the HTTP connection pool (if a request opened one)."""
        if self._client is not None:
            self._client.close()

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
        data = decoded(response)
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
              key: str | None, queued_at: str | None = None, fields: dict[str, str] | None = None) -> Any | Failure:
        """One attempt: the decoded 2xx body, a :class:`Failure` (retryable), or ``HubError`` raised (4xx).

        ``fields``, when given, receives the answer's header fields (names lower-cased)."""
        import httpx2

        if self._left() == 0:  # nothing is sent that could not be answered in time
            return Failure(f"the hub at {self.settings.url} did not answer the queued writes within the timeout "
                           f"({self.settings.timeout:g} s)", reached=False)
        try:
            headers = dict(self.identity_headers())
        except Unreachable as exc:
            return Failure(str(exc), reached=False)  # nothing was sent
        if key:
            headers[IDEMPOTENCY_HEADER] = key
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
            return Failure(f"cannot reach {self.settings.url} ({type(exc).__name__})", reached=sent)
        except httpx2.TimeoutException:
            return Failure(f"the hub at {self.settings.url} did not answer in time")
        except httpx2.TransportError as exc:  # e.g. the connection dropped after the request was sent
            return Failure(f"cannot reach {self.settings.url} ({type(exc).__name__})")
        except httpx2.DecodingError as exc:  # an answer _fetch does not read: it may have been applied
            return Failure(f"the answer of the hub at {self.settings.url} could not be read ({exc})")
        if response.status_code >= 500:
            reason = f"hub answered {response.status_code}"
            data = decoded(response)
            error = data.get("error") if isinstance(data, dict) else None
            code = error.get("code") if isinstance(error, dict) and isinstance(error.get("code"), str) else None
            if response.status_code == 503 and "database" in response.text:
                reason = "the hub's database is unavailable (503)"
            return Failure(reason, _retry_after(response.headers.get("Retry-After")), status=response.status_code,
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
        data = decoded(response)
        if response.status_code >= 400:
            raise refusal(response.status_code, data, response.text)
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
        a thousand times its size). Within a call's time budget
        (:meth:`~coordhub.client.client.CoordClient.call`)
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

    @contextmanager
    def within(self, deadline: float) -> Iterator[None]:
        """Requests made inside share one time budget ending at ``deadline`` (``time.monotonic()``), as the
        requests of one :meth:`~coordhub.client.client.CoordClient.call` do: each gets what is left of it, none is
        sent once it is spent, and a ``Retry-After`` is waited out only within it. For a caller that drains this
        client's queue for requests of its own (the seed-002 client).

        The budget is the calling thread's: requests other threads make meanwhile are not bound by it. Nested, the
        inner budget ends at the earlier deadline, and the outer one holds again after it."""
        outer = getattr(self._calls, "deadline", None)
        self._calls.deadline = deadline if outer is None else min(outer, deadline)
        try:
            yield
        finally:
            self._calls.deadline = outer

    def _left(self) -> float | None:
        """Seconds left of this thread's running call's time budget (0 when spent), or None outside one."""
        deadline: float | None = getattr(self._calls, "deadline", None)
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def _whole(self, response: httpx2.Response, deadline: float) -> httpx2.Response:
        """``response`` (streamed, its head read) with its whole body, read by ``deadline`` (``time.monotonic()``)
        within the bounds of :meth:`_fetch`, which says what it raises."""
        import httpx2

        body = Body(response.headers)
        for chunk in response.iter_bytes():
            body.add(chunk)
            if time.monotonic() > deadline:
                raise httpx2.ReadTimeout(f"the answer took longer than {self.settings.timeout:g} s")
        return httpx2.Response(response.status_code, headers=response.headers, content=body.content(),
                               request=response.request)

    def _attempt(self, method: str, path: str, params: dict[str, Any] | None, body: Any,
                 key: str | None, queued_at: str | None = None, fields: dict[str, str] | None = None) -> Any | Failure:
        """:meth:`_send`, and once more after the wait a 503's ``Retry-After`` asks for (at most
        :data:`MAX_RETRY_WAIT` seconds, and only when the call's time budget outlasts it)."""
        result = self._send(method, path, params, body, key, queued_at, fields)
        left = self._left()
        if isinstance(result, Failure) and result.retry_after is not None and (
                left is None or min(result.retry_after, MAX_RETRY_WAIT) < left):  # a wait past the budget: no retry
            self._sleep(min(result.retry_after, MAX_RETRY_WAIT))  # seed 001: wait once, then retry
            first = result
            result = self._send(method, path, params, body, key, queued_at, fields)
            if isinstance(result, Failure) and first.reached and not result.reached:
                result = Failure(result.reason, result.retry_after, True, result.status, result.code)
        return result


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


def decoded(response: httpx2.Response) -> Any:
    """The JSON body of ``response``, as :func:`parsed` reads it."""
    return parsed(response.content, response.text)


def parsed(raw: bytes, text: str | None = None) -> Any:
    """The JSON of an answer's body ``raw``; for one that is no JSON (or nested too deep), an error envelope of
    code ``bad_response`` holding the start of its text (``text``, else ``raw`` read as UTF-8)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deep (json raises it, not a ValueError)
        shown = raw.decode("utf-8", "replace") if text is None else text
        return {"error": {"code": "bad_response", "message": shown[:200]}}


def refusal(status: int, data: Any, text: str) -> HubError:
    """The :class:`HubError` of a refusal (4xx; a 5xx for the asyncio client, which queues nothing) whose body,
    as :func:`parsed` reads it, is ``data`` (the error envelope, docs/api.md) and raw text ``text``. Every client on
    ``httpx2`` reads a refusal here, so a code is the same whichever client met it: a body that is no JSON (a
    proxy's HTML page) gives code ``bad_response``, JSON of another shape code ``error``; the message is then the
    start of the text (``HTTP <status>`` for none)."""
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    code, message = error.get("code"), error.get("message")
    return HubError(status, code if isinstance(code, str) and code else "error",
                    message if isinstance(message, str) and message else text[:200] or f"HTTP {status}", data)
