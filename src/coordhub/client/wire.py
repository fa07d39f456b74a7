"""A small JSON client for the hub over one socket: standard library only, one short timeout, never a retry.

Two front ends must start in tens of milliseconds and so cannot import the
HTTP stack the full client uses: the hooks, which run before and after every
tool call, and the CLI's fast path for the read commands agents run in loops
(:mod:`coordhub.cli.fast`). Both talk to the hub through :class:`Hub`: one
HTTP/1.1 request per connection (``Connection: close``), JSON in and out.
``http.client`` would cost about as much start-up time as everything else the
edit hook imports (it pulls in the ``email`` parser and ``ssl``); ``ssl`` is
imported here only for an ``https`` hub.

Two levels:

* :meth:`Hub.exchange` sends one request and returns the whole :class:`Reply`
  (status, header fields, body), or raises :class:`Failed` saying in which
  phase it failed (``request``: a header value that would break the request;
  ``connect``: the TCP connection or TLS handshake; ``read``: after the
  request went out), so a caller can tell "nothing reached the hub" from
  "the answer was lost".
* :meth:`Hub.request` (what the hooks use) decodes the answer (:meth:`Hub.pages`
  reads every page of a list of leases the hub cut, one request per page): it raises
  :class:`HubUnreachable` when no answer could be had (connection error,
  timeout, a 5xx, a 3xx redirect, which is never followed, an answer that
  is not HTTP or not JSON) and
  :class:`HubRefused` for a 4xx, carrying the error envelope's ``code`` and
  ``message`` (docs/api.md). It never queues: a hook's effect is only useful
  now. Both derive from :class:`HubError`, so a caller that only needs
  "could the hub be asked?" catches one class.
"""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from coordhub import __version__
from coordhub.headers import (
    NEXT_AFTER_FENCE_HEADER,
    NEXT_AFTER_HEADER,
    NEXT_AFTER_SEQ_HEADER,
    NEXT_BEFORE_SEQ_HEADER,
    NEXT_CURSOR_HEADER,
    SESSION_HEADER,
)

API = "/api/coord"
MAX_ANSWER = 16 * 1024 * 1024  # bytes; far above any answer a hook or the CLI's fast path asks for
# Where a list the hub answered in part goes on (coordhub.headers), as the answer's fields are keyed (Reply.fields;
# httpx2's headers take them as well): in lower case.
NEXT_CURSOR = NEXT_CURSOR_HEADER.lower()  # todos, components, work items: cursor= this
NEXT_AFTER_SEQ = NEXT_AFTER_SEQ_HEADER.lower()  # unread messages: after_seq= this
NEXT_BEFORE_SEQ = NEXT_BEFORE_SEQ_HEADER.lower()  # message history: before_seq= this
NEXT_AFTER_FENCE = NEXT_AFTER_FENCE_HEADER.lower()  # leases: after_fence= this
NEXT_AFTER = NEXT_AFTER_HEADER.lower()  # a conversation's turns, pending turns: after= this
_FIELD = re.compile(r"[\x20-\x7e\x80-\xff]*")  # what a header value (and our path) may hold: no CR, LF, NUL …
_UNSAFE_CHARS = frozenset("?#%\\\x7f" + "".join(map(chr, range(0x20))))
_DOT_SEGMENT = re.compile(r"(?:^|/)\.{1,2}(?:/|$)")


def whole_number(value: str | None, digits: int = 19) -> int | None:
    """``value`` as a non-negative integer when it is 1 to ``digits`` ASCII digits, else None: how a number in a
    header field or an event id the hub sends is read.

    ``str.isdigit`` alone lets through what ``int`` then refuses with a
    ``ValueError`` (``²``, and more than 4,300 digits), and any answer may
    come from a hostile listener or a man-in-the-middle.
    """
    return int(value) if value and len(value) <= digits and value.isascii() and value.isdigit() else None


def credential_headers(token: str | None, session: str | None, *, claimed: bool = False) -> dict[str, str]:
    """The headers that make a request act as a session: the bearer token, else ``X-Coord-Session``
    (``--no-auth`` hubs only); none without either.

    With a token, ``session`` goes beside it as ``X-Coord-Session`` only when
    ``claimed`` (named explicitly: :attr:`~coordhub.client.settings.ClientSettings.session_claimed`) and
    a header value (printable ASCII, as every session id is): the hub then refuses the request with 403
    ``session_mismatch`` if the token is another session's, rather than act as it unnoticed. A derived
    name (``<machine>/claude-main``) is a guess, not a claim, and is not sent beside a token.
    """
    if token:
        bearer = {"Authorization": f"Bearer {token}"}
        if claimed and session and session.isascii() and session.isprintable():
            bearer[SESSION_HEADER] = session
        return bearer
    return {SESSION_HEADER: session} if session else {}


def unsafe_path(path: str) -> str | None:
    """Why ``path`` (a request path the client built) must not be sent, or None when it may.

    Clients build paths from ids their callers give (an MCP tool's
    ``lease_id``, a CLI argument): ``../locks?release_all=true`` as a lease
    id would reach another endpoint, method or query than the call says (an
    HTTP library resolves dot segments, RFC 3986 §5.2.4). No id of ours holds
    a dot segment, an empty one, ``?``, ``#``, ``%``, a backslash or a
    control character, so a path with any is refused before it is sent.
    """
    # Every MCP tool call and client call passes here: the common path is decided by C-level scans alone.
    if (not _UNSAFE_CHARS.isdisjoint(path) or "//" in path
            or (("/." in path or path[:1] == ".") and _DOT_SEGMENT.search(path))):
        return (f"{path!r} is not a request path this client sends: an id in it holds '..', '.', '//', '?', '#', "
                "'%', a backslash or a control character")
    return None


class HubError(Exception):
    """The hub could not be asked, or did not agree: the root of this module's errors."""


class HubUnreachable(HubError):
    """No usable answer from the hub: network error, timeout, 5xx, a 3xx (never followed) or a body that is not JSON."""


class HubRefused(HubError):
    """The hub answered 4xx; ``code`` and ``message`` come from its error envelope."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{message} [{status} {code}]")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class Failed(Exception):
    """One exchange failed: ``phase`` is ``request`` (it could not be written: a control character in a header
    value; nothing was sent), ``connect`` (no connection; nothing was sent) or ``read`` (sent, answer lost or
    unreadable); ``error`` is the ``OSError`` or ``ValueError`` (an answer that is not HTTP) behind it."""

    def __init__(self, phase: str, error: OSError | ValueError) -> None:
        super().__init__(f"{phase}: {error}")
        self.phase = phase
        self.error = error


class Reply(NamedTuple):
    """A complete answer: the status, the header fields (names lower-cased) and the body (de-chunked)."""

    status: int
    fields: dict[str, str]
    body: bytes


class Listed(NamedTuple):
    """What :meth:`Hub.pages` read: the rows, and whether more followed when it stopped (``more``)."""

    rows: list[Any]
    more: bool


class Hub:
    """Talks to one hub as one session; ``timeout`` (seconds) bounds each whole request.

    ``url`` is the server root (``http://host:8001``, optionally with a path
    prefix). ``agent`` is the ``User-Agent`` product name. With neither
    ``token`` nor ``session`` no credential is sent; ``claimed``: the session was named explicitly, so it goes
    beside the token too (:func:`credential_headers`). Each request opens its
    own connection, so there is nothing to close; :meth:`close` exists for
    symmetry.
    """

    def __init__(self, url: str, token: str | None, session: str | None, timeout: float,
                 *, agent: str = "coordhub-hook", claimed: bool = False) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HubUnreachable(f"hub URL {url!r} is not an http(s) URL")
        self.url = url
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._headers = {"Host": host if parts.port is None else f"{host}:{parts.port}",
                         "User-Agent": f"{agent}/{__version__}", "Accept": "application/json",
                         "Connection": "close", **credential_headers(token, session, claimed=claimed)}

    def get(self, path: str, **params: Any) -> Any:
        """``GET /api/coord{path}`` with the non-None ``params``; the decoded JSON body."""
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        """``POST /api/coord{path}`` with a JSON body; the decoded JSON body."""
        return self.request("POST", path, body=body)

    def pages(self, path: str, most: int, **params: Any) -> Listed:
        """``GET /api/coord{path}`` (a list of leases) and every page after it, until the hub names no further
        page (``Coord-Next-After-Fence``, asked for with ``after_fence=``) or at least ``most`` rows were read.

        ``Listed.more`` is True when it stopped with pages left. An answer that
        is not a list, or an empty page, ends the reading (its rows are none). One request per
        page (500 leases at most each, at least one: at most ``most`` requests); raises as :meth:`request` does.
        """
        rows: list[Any] = []
        after = 0
        while True:
            data, fields = self._answer("GET", path, {**params, "after_fence": after or None}, None)
            if not isinstance(data, list):
                return Listed(rows, False)
            rows += data
            following = whole_number(fields.get(NEXT_AFTER_FENCE))
            if not data or following is None or following <= after:  # a hub's pages are never empty: a hostile
                return Listed(rows, False)  # one naming a next page after each empty one would be read for ever
            if len(rows) >= most:
                return Listed(rows, True)
            after = following

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        """One request to ``/api/coord{path}``; raises ``HubUnreachable`` or ``HubRefused`` (module docstring)."""
        return self._answer(method, path, params, body)[0]

    def _answer(self, method: str, path: str, params: dict[str, Any] | None,
                body: Any) -> tuple[Any, dict[str, str]]:
        """:meth:`request`'s decoded body, and the answer's header fields (names lower-cased)."""
        try:
            status, fields, raw = self.exchange(method, API + path, params=params, body=body)
        except Failed as exc:
            if exc.phase == "request":
                raise HubUnreachable(f"not asking the hub at {self.url}: {exc.error}") from None
            raise HubUnreachable(_describe(exc.error, self.url, self.timeout)) from None
        if status >= 500 or status < 200 or 300 <= status < 400:  # 3xx: a redirect, not followed (nor applied)
            raise HubUnreachable(f"hub at {self.url} answered {status}")
        try:
            data = json.loads(raw) if raw else None
        except (ValueError, RecursionError):  # RecursionError: nested too deep (json raises it, not a ValueError)
            raise HubUnreachable(f"hub at {self.url} answered {status} with a body that is not JSON") from None
        if status >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            error = error if isinstance(error, dict) else {}
            message = str(error.get("message") or raw[:200].decode("utf-8", "replace"))
            raise HubRefused(status, str(error.get("code", "error")), message, data)
        return data, fields

    def exchange(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                 headers: dict[str, str] | None = None) -> Reply:
        """Send one request to ``path`` (from the server root: ``/health``, ``/api/coord/locks``) and read the
        whole answer, whatever its status.

        ``params`` with a None value are left out; ``body`` (when not None) is
        sent as JSON; ``headers`` are added to this client's. Raises
        :class:`Failed`.
        """
        bad = unsafe_path(path)
        if bad is not None:
            raise Failed("request", ValueError(bad))
        query = "&".join(f"{quote(k)}={quote(_param(v), safe='')}" for k, v in (params or {}).items()
                         if v is not None)
        target = f"{self._prefix}{path}" + (f"?{query}" if query else "")
        payload = b"" if body is None else json.dumps(body).encode()
        sent = {**self._headers, **(headers or {})}
        if body is not None:
            sent["Content-Type"] = "application/json"
            sent["Content-Length"] = str(len(payload))
        if not all(_FIELD.fullmatch(v) for v in sent.values()) or not _FIELD.fullmatch(target):
            # a line break in a token or session from a file would start a header of its own (RFC 9110 §5.5)
            raise Failed("request", ValueError("a header value or the path holds a control character"))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items()) + "\r\n"
        deadline = time.monotonic() + self.timeout
        try:
            sock = self._connect()
        except OSError as exc:
            raise Failed("connect", exc) from None
        try:
            with sock:
                sock.sendall(head.encode("latin-1") + payload)
                chunks = []
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    sock.settimeout(left)
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    if sum(map(len, chunks)) > MAX_ANSWER:
                        raise ValueError(f"answer larger than {MAX_ANSWER} bytes")
            return _parse_response(b"".join(chunks))
        except (OSError, ValueError) as exc:
            raise Failed("read", exc) from None

    def _connect(self) -> socket.socket:
        """A connected socket (TLS for an https hub); ``OSError`` (``TimeoutError`` included) on failure."""
        # an ASCII name as bytes: a str is IDNA-encoded first, which imports the idna codec and unicodedata
        # (milliseconds of start-up) to leave an ASCII name as it is
        host: str | bytes = self._host.encode("ascii") if self._host.isascii() else self._host
        raw_sock = socket.create_connection((host, self._port), timeout=self.timeout)  # type: ignore[arg-type]
        if not self._https:
            return raw_sock
        try:
            import ssl  # only for https hubs: ssl alone costs a few ms of start-up

            return ssl.create_default_context().wrap_socket(raw_sock, server_hostname=self._host)
        except BaseException:
            raw_sock.close()
            raise

    def close(self) -> None:
        """Nothing to release: every request had its own connection."""


def _parse_response(data: bytes) -> Reply:
    """The :class:`Reply` of a complete HTTP/1.1 answer read to EOF; ``ValueError`` if it is not one."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("the answer is not HTTP (no end of headers)")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError(f"the answer is not HTTP: {lines[0][:60]!r}")
    status = int(rest[:3])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    elif "content-length" in fields:
        length = int(fields["content-length"])
        if len(body) < length:
            raise ValueError("the answer ended early")
        body = body[:length]
    return Reply(status, fields, body)


def _dechunk(body: bytes) -> bytes:
    """The payload of a ``Transfer-Encoding: chunked`` body (RFC 9112 §7.1); ``ValueError`` if malformed."""
    out: list[bytes] = []
    pos = 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(body[end + 2:end + 2 + size])
        pos = end + 2 + size + 2


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _describe(exc: BaseException, url: str, timeout: float) -> str:
    if isinstance(exc, ValueError):
        return f"hub at {url} gave an answer that is not readable HTTP ({exc})"
    if isinstance(exc, TimeoutError):
        return f"hub at {url} did not answer within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return f"hub at {url} refused the connection"
    return f"cannot reach the hub at {url} ({type(exc).__name__}: {exc})"
