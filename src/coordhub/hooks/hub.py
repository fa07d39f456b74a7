"""A tiny JSON client for the hub: standard library only, one short timeout, never a retry.

The hooks run before and after every tool call, so this client does only what
they need, over a plain socket: one HTTP/1.1 request per connection
(``Connection: close``), a bearer token (or the ``X-Coord-Session`` header
for a ``--no-auth`` hub), JSON in and out. ``http.client`` would cost about
as much start-up time as everything else the edit hook imports (it pulls in
the ``email`` parser and ``ssl``); ``ssl`` is imported here only for an
``https`` hub. It raises :class:`HubUnreachable` when no answer could be had
(connection error, timeout, a 5xx, an answer that is not HTTP or not JSON)
and :class:`HubRefused` for a 4xx, carrying the error envelope's ``code``
and ``message`` (docs/api.md). It never queues: a hook's effect is only
useful now. Both derive from :class:`HubError`, as does
:class:`NotConfigured` (settings that cannot be loaded), so a caller that
only needs "could the hub be asked?" catches one class.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import quote, urlsplit

from coordhub import __version__

API = "/api/coord"
SESSION_HEADER = "X-Coord-Session"
MAX_ANSWER = 16 * 1024 * 1024  # bytes; far above any answer a hook asks for


class HubError(Exception):
    """The hub could not be asked, or did not agree: the root of this module's errors."""


class NotConfigured(HubError):
    """The client settings cannot be loaded (e.g. a malformed identity.json)."""


class HubUnreachable(HubError):
    """No usable answer from the hub: network error, timeout, 5xx or a body that is not JSON."""


class HubRefused(HubError):
    """The hub answered 4xx; ``code`` and ``message`` come from its error envelope."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{message} [{status} {code}]")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class Hub:
    """Talks to one hub as one session; ``timeout`` (seconds) bounds each whole request.

    ``url`` is the server root (``http://host:8001``, optionally with a path
    prefix). Each request opens its own connection, so there is nothing to
    close; :meth:`close` exists for symmetry.
    """

    def __init__(self, url: str, token: str | None, session: str | None, timeout: float) -> None:
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
                         "User-Agent": f"coordhub-hook/{__version__}", "Accept": "application/json",
                         "Connection": "close"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif session:
            self._headers[SESSION_HEADER] = session

    def get(self, path: str, **params: Any) -> Any:
        """``GET /api/coord{path}`` with the non-None ``params``; the decoded JSON body."""
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        """``POST /api/coord{path}`` with a JSON body; the decoded JSON body."""
        return self.request("POST", path, body=body)

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        """One request; raises ``HubUnreachable`` or ``HubRefused`` (see the module docstring)."""
        query = "&".join(f"{quote(k)}={quote(_param(v), safe='')}" for k, v in (params or {}).items()
                         if v is not None)
        target = f"{self._prefix}{API}{path}" + (f"?{query}" if query else "")
        payload = b"" if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
            headers["Content-Length"] = str(len(payload))
        try:
            status, raw = self._exchange(method, target, payload, headers)
        except (OSError, ValueError) as exc:
            raise HubUnreachable(_describe(exc, self.url, self.timeout)) from None
        if status >= 500:
            raise HubUnreachable(f"hub at {self.url} answered {status}")
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            raise HubUnreachable(f"hub at {self.url} answered {status} with a body that is not JSON") from None
        if status >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            error = error if isinstance(error, dict) else {}
            message = str(error.get("message") or raw[:200].decode("utf-8", "replace"))
            raise HubRefused(status, str(error.get("code", "error")), message, data)
        return data

    def _exchange(self, method: str, target: str, payload: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """Send one request and read the whole answer; (status, body). ``OSError``/``ValueError`` on failure."""
        deadline = time.monotonic() + self.timeout
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        with socket.create_connection((self._host, self._port), timeout=self.timeout) as raw_sock:
            sock: socket.socket
            if self._https:
                import ssl  # only for https hubs: ssl alone costs a few ms of start-up

                sock = ssl.create_default_context().wrap_socket(raw_sock, server_hostname=self._host)
            else:
                sock = raw_sock
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

    def close(self) -> None:
        """Nothing to release: every request had its own connection."""


def _parse_response(data: bytes) -> tuple[int, bytes]:
    """(status, body) of a complete HTTP/1.1 answer read to EOF; ``ValueError`` if it is not one."""
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
    return status, body


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


def halt_of(exc: BaseException) -> dict[str, Any] | None:
    """The standing halt a 423 ``halted`` refusal carries (``error.halt``), else None."""
    if not isinstance(exc, HubRefused) or exc.code != "halted" or not isinstance(exc.body, dict):
        return None
    error = exc.body.get("error")
    halt = error.get("halt") if isinstance(error, dict) else None
    return halt if isinstance(halt, dict) else {"halted_by": "?", "halted_at": "?", "reason": exc.message}


def paused_of(exc: BaseException) -> dict[str, Any] | None:
    """The caller's pause a 423 ``paused`` refusal carries (``error.paused``), else None."""
    if not isinstance(exc, HubRefused) or exc.code != "paused" or not isinstance(exc.body, dict):
        return None
    error = exc.body.get("error")
    paused = error.get("paused") if isinstance(error, dict) else None
    return paused if isinstance(paused, dict) else {"paused_at": "?", "scope": "?"}


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
