"""The asyncio client: one session's calls to a hub, for the MCP tools.

Unlike :class:`coordhub.client.client.CoordClient` there is no softfail
queue: an MCP tool reports a failure to its agent at once instead of
promising a later write. Every mutating call carries a fresh
``Idempotency-Key``, so a caller that retries after a lost answer never
applies a write twice. Errors: the hub's 4xx/5xx answers raise
:class:`~coordhub.client.outcomes.HubError` with the envelope's code and
message, read as the synchronous client reads them
(:func:`coordhub.client.transport.refusal`); network errors and timeouts raise
:class:`~coordhub.client.outcomes.Unreachable`.

Two ways to reach the hub: over HTTP (``httpx2``; ``transport`` may replace
the network, e.g. ``httpx2.ASGITransport``), or, inside the hub itself,
``app=``: the request is handed straight to the hub's ASGI app, with the same
method, path, query, headers and body, so authentication, the halt,
idempotency and validation are exactly those of HTTP. That path skips the HTTP
client's request and response objects and costs about half as much per call.

A list the hub pages says where its next page starts only in a header
(``Coord-Next-Cursor``; for messages ``Coord-Next-After-Seq`` or
``Coord-Next-Before-Seq``, for leases ``Coord-Next-After-Fence``, for
conversation turns ``Coord-Next-After``):
:meth:`AsyncCoordClient.call_page` answers the body and that header, whichever
way the hub is reached.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx2
import orjson

from coordhub import __version__, jsonbytes
from coordhub.client.outcomes import HubError, Unreachable
from coordhub.client.transport import Body, dropped, parsed, refusal
from coordhub.client.wire import (
    NEXT_AFTER,
    NEXT_AFTER_FENCE,
    NEXT_AFTER_SEQ,
    NEXT_BEFORE_SEQ,
    NEXT_CURSOR,
    credential_headers,
    unsafe_path,
)
from coordhub.headers import IDEMPOTENCY_HEADER

if TYPE_CHECKING:
    from starlette.types import ASGIApp

DEFAULT_TIMEOUT = 10.0
USER_AGENT = f"coordhub/{__version__}"
NEXT_HEADERS = frozenset({NEXT_CURSOR, NEXT_AFTER_SEQ, NEXT_BEFORE_SEQ, NEXT_AFTER_FENCE, NEXT_AFTER})
MAX_NEXT_CURSOR = 4096  # characters of such a header taken from a hub (its own cursors are at most 2048)


AnswerHeaders = dict[str, str]
"""Where a request's caller wants the answer's headers put: names in lower case; a header sent twice holds its
values joined by ``, `` over the network, its last in-process."""
ServeInProcess = Callable[[str, str, dict[str, Any], dict[str, str], bytes, AnswerHeaders | None],
                          Awaitable[tuple[int, bytes]]]
"""An in-process app's own way to answer ``(method, path, query, headers, body, answer_headers)`` with ``(status,
body)``, as :func:`asgi_request` would get them from it, putting the answer's headers into ``answer_headers``
unless it is None (:class:`coordhub.mcp.served.AppConnector`'s app has one)."""


class AsyncCoordClient:
    """Talks to one hub as one session. Use ``async with``, or call :meth:`aclose`.

    ``app`` calls that ASGI app in-process instead of the network (the hub's
    own ``/mcp``), through its ``serve_in_process`` when it has one
    (:data:`ServeInProcess`); ``transport`` replaces the network for the HTTP client.
    ``session_id`` may be given when the caller's identity is already known
    (it saves a ``whoami`` round trip). ``claimed``: ``session`` was named
    explicitly, so it goes beside a token too (:func:`~coordhub.client.wire.credential_headers`).
    """

    def __init__(self, base_url: str, token: str | None = None, session: str | None = None,
                 transport: httpx2.AsyncBaseTransport | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 app: ASGIApp | None = None, session_id: str | None = None, claimed: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"User-Agent": USER_AGENT, **credential_headers(token, session, claimed=claimed)}
        self._app = app
        self._local: ServeInProcess | None = getattr(app, "serve_in_process", None)
        # identity: an answer is read unencoded, so MAX_ANSWER bounds what it unpacks to (see _send)
        self._http = None if app is not None else httpx2.AsyncClient(
            transport=transport, timeout=timeout, headers={"Accept-Encoding": "identity"})
        self._session_id = session_id or (None if token else session)

    @property
    def has_token(self) -> bool:
        """Whether requests carry a token (``Authorization``): a 401 then refused it rather than found none."""
        return "Authorization" in self._headers

    @property
    def in_process(self) -> bool:
        """Whether requests are handed to an app in-process (never lost on the way, so never retried)."""
        return self._app is not None

    async def __aenter__(self) -> AsyncCoordClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (nothing to close in-process)."""
        if self._http is not None:
            await self._http.aclose()

    async def call(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None,
                   idempotency_key: str | None = None, *, timeout: float | None = None,
                   answer_headers: AnswerHeaders | None = None) -> Any:
        """One request; the decoded JSON body of a 2xx answer.

        ``None`` values in ``params`` are left out. Mutating methods send
        ``idempotency_key`` or, over the network, a fresh one. ``timeout`` (seconds) overrides
        the client's for this call (long polls; in-process calls have none).
        ``answer_headers``, when given, gets the answer's headers (:data:`AnswerHeaders`; as the hub sent them:
        a caller bounds what it keeps, see :meth:`call_page`).
        Raises ``HubError`` for a 4xx/5xx answer, or ``not_applied`` for a status no hub answers (a 3xx
        redirect: nothing was done), ``Unreachable`` when no answer came.
        """
        bad = unsafe_path(path)
        if bad is not None:
            raise HubError(400, "invalid_path", bad)
        headers = dict(self._headers)
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        elif method != "GET" and self._app is None:
            # A fresh key makes a retry over the network safe; a request handed to the app in-process is never
            # retried, so it would only cost the hub an idempotency record per write.
            headers[IDEMPOTENCY_HEADER] = str(uuid.uuid4())
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        content = None if body is None else jsonbytes.dumps(body)
        if content is not None:
            headers["Content-Type"] = "application/json"
        if self._local is not None:
            status, raw = await self._local(method, path, query, headers, content or b"", answer_headers)
        elif self._app is not None:
            status, raw = await asgi_request(self._app, method, path, query, headers, content or b"", answer_headers)
        else:
            status, raw = await self._send(method, path, query, headers, content, timeout, answer_headers)
        if not 200 <= status < 300 and status < 400:
            # A redirect (a proxy sending http to https) or another answer that is no hub's: the write was not
            # applied, and the client follows no redirect (its token would go where the answer says); as
            # coordhub.client.transport's _send says, and before, a write so answered was taken as done
            raise HubError(status, "not_applied", f"{self.base_url} answered {status}, not the hub's answer: "
                           "nothing was done; the client follows no redirect, point it at the hub itself")
        if status >= 400:  # read as the synchronous client reads a refusal: one reader, the same codes
            raise refusal(status, parsed(raw), raw.decode("utf-8", "replace"))
        return _decode(raw)

    async def call_page(self, method: str, path: str, params: dict[str, Any] | None = None, *,
                        header: str = NEXT_CURSOR, timeout: float | None = None) -> tuple[Any, str | None]:
        """:meth:`call` of one page of a list the hub pages: the decoded body and where the next page starts, the
        answer's ``header`` (one of :data:`NEXT_HEADERS`, in lower case; None: the list ends with this page).

        Raises as :meth:`call` does, and ``Unreachable`` for a header that is empty or longer than
        :data:`MAX_NEXT_CURSOR` characters, as for another answer no hub of ours gives (the caller keeps the
        cursor and sends it back: a hostile hub must not make it any size it likes).
        """
        assert header in NEXT_HEADERS, header
        answered: AnswerHeaders = {}
        data = await self.call(method, path, params, timeout=timeout, answer_headers=answered)
        after = answered.get(header)
        if after is not None and not 0 < len(after) <= MAX_NEXT_CURSOR:
            shown = "-".join(word.capitalize() for word in header.split("-"))
            raise Unreachable(f"the answer of the hub at {self.base_url} to {method} {path} has a {shown} "
                              f"header of {len(after)} characters, not 1 to {MAX_NEXT_CURSOR}")
        return data, after

    async def _send(self, method: str, path: str, query: dict[str, Any], headers: dict[str, str],
                    content: bytes | None, timeout: float | None,
                    answer_headers: AnswerHeaders | None) -> tuple[int, bytes]:
        """One request over the network and its whole answer, within bounds: ``timeout`` (else the client's)
        seconds for the whole exchange (``httpx2``'s own bounds each read, so a drip of bytes would never end) and
        :data:`~coordhub.client.wire.MAX_ANSWER` bytes of an unencoded answer (a hostile hub or a man-in-the-middle
        on plain http must not exhaust time or memory). Raises ``Unreachable``."""
        assert self._http is not None
        limit = self.timeout if timeout is None else timeout
        for again in (True, False):
            try:
                async with asyncio.timeout(limit):
                    return await self._fetch(method, path, query, headers, content, limit, answer_headers)
            except httpx2.ConnectError as exc:  # no connection: nothing was sent, unless a dropped first attempt was
                raise Unreachable(f"cannot reach the hub at {self.base_url} ({type(exc).__name__}: {exc})",
                                  sent=not again) from exc
            except (TimeoutError, httpx2.TimeoutException) as exc:
                raise Unreachable(f"the hub at {self.base_url} did not answer in time") from exc
            except httpx2.TransportError as exc:
                if again and dropped(exc):  # a GET or keyed (see call): a second attempt has no second effect
                    continue
                raise Unreachable(f"cannot reach the hub at {self.base_url} ({type(exc).__name__}: {exc})") from exc
            except httpx2.DecodingError as exc:
                raise Unreachable(f"the answer of the hub at {self.base_url} could not be read ({exc})") from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _fetch(self, method: str, path: str, query: dict[str, Any], headers: dict[str, str],
                     content: bytes | None, timeout: float,
                     answer_headers: AnswerHeaders | None) -> tuple[int, bytes]:
        """The status and body of one request, its headers put into ``answer_headers`` once the body is read
        whole; ``httpx2.DecodingError`` for an answer encoded (``Accept-Encoding: identity`` was asked for: a gzip
        answer unpacks to a thousand times its size) or larger than :data:`~coordhub.client.wire.MAX_ANSWER`
        bytes (:class:`~coordhub.client.transport.Body`)."""
        assert self._http is not None
        async with self._http.stream(method, self.base_url + path, params=query or None, content=content,
                                     headers=headers, timeout=timeout) as response:
            body = Body(response.headers)
            async for chunk in response.aiter_bytes():
                body.add(chunk)
            if answer_headers is not None:  # httpx2 lower-cases the names and joins a repeated header's values
                answer_headers.update(response.headers.items())
            return response.status_code, body.content()

    async def session_id(self) -> str:
        """The session this client acts as (``GET /api/coord/whoami``, asked once).

        Raises :class:`HubError` ``no_session`` (403) for a token that acts as
        no session, :class:`Unreachable` for an answer of another shape.
        """
        if self._session_id is None:
            me = await self.call("GET", "/api/coord/whoami")
            session = me.get("session_id", "") if isinstance(me, dict) else ""
            if session is None:  # an admin token made without a session
                raise HubError(403, "no_session", "this token acts as no session (an admin token made without one); "
                               "this call acts as a session: use a session's token")
            if not isinstance(session, str) or not session:  # a hostile or broken hub
                raise Unreachable(f"the answer of the hub at {self.base_url} to GET /api/coord/whoami is not an "
                                  "object with session_id (a string)")
            self._session_id = session
        return self._session_id


async def asgi_request(app: ASGIApp, method: str, path: str, query: dict[str, Any], headers: dict[str, str],
                       body: bytes, answer_headers: AnswerHeaders | None = None) -> tuple[int, bytes]:
    """Hand one HTTP request to an ASGI app in-process; its status and body (its headers into
    ``answer_headers`` unless None).

    An exception escaping the app is a 500 (as the server would answer), like
    ``httpx2.ASGITransport(raise_app_exceptions=False)``.
    """
    return await asgi_call(app, asgi_scope(method, path, query, headers), body, answer_headers)


def asgi_scope(method: str, path: str, query: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """The ASGI HTTP scope of a request made in-process (``query`` urlencoded, ``headers`` latin-1)."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": urlencode(query).encode() if query else b"", "server": ("coordhub.internal", 80),
            "client": ("127.0.0.1", 0),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]}


async def asgi_call(app: ASGIApp, scope: dict[str, Any], body: bytes,
                    answer_headers: AnswerHeaders | None = None) -> tuple[int, bytes]:
    """Run ``app`` (any ASGI callable, a ``Response`` too) on ``scope`` with ``body``; the status and body it
    sent (500 for an exception escaping it, as in :func:`asgi_request`), the headers it sent into
    ``answer_headers`` unless None (:data:`AnswerHeaders`)."""
    delivered = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            if answer_headers is not None:
                answer_headers.update((name.decode("latin-1").lower(), value.decode("latin-1"))
                                      for name, value in message.get("headers", ()))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await app(scope, receive, send)
    except Exception:  # the app's error middleware has answered 500 already, or nothing was sent
        return status or 500, b"".join(chunks)
    return status, b"".join(chunks)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except ValueError:  # orjson.JSONDecodeError is a ValueError: not JSON, or numbers orjson does not take
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than orjson takes, too deep for json
            return None


def _param(value: Any) -> Any:
    """Query values as the hub parses them (``true``/``false`` for booleans)."""
    return str(value).lower() if isinstance(value, bool) else value
