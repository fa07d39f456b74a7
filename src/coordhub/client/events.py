"""Following the hub's event stream (SSE) from the synchronous client, resumed without a gap after a lost connection.

:class:`EventStream` is a base of :class:`coordhub.client.client.CoordClient`: the stream is asked with the
client's identity and its refusal read within the bounds of any answer (:mod:`coordhub.client.transport`).
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from coordhub.client.outcomes import Unreachable
from coordhub.client.transport import Transport, decoded, refusal
from coordhub.client.wire import whole_number
from coordhub.headers import CURSOR_HEADER


class EventStream(Transport):
    """The event stream of the hub, as one session sees it."""

    _aborted = False  # set by abort(): events() ends instead of reconnecting
    _streaming: Any = None  # the response events() reads, for abort() to reach its socket

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
        while not self._aborted:
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
                    self._streaming = src.response
                    if self._aborted:  # abort() came before the response it would have ended
                        return
                    if src.response.status_code >= 400:  # its body read within bounds, as any answer's (_fetch)
                        try:
                            refused = self._whole(src.response, time.monotonic() + self.settings.timeout)
                        except httpx2.DecodingError as exc:
                            raise Unreachable(f"the event stream from {self.settings.url} was refused with an "
                                              f"answer that could not be read ({exc})") from None
                        raise refusal(refused.status_code, decoded(refused), refused.text)
                    if cursor is None:  # "from now": the hub says which event now is, so a reconnect misses nothing
                        cursor = whole_number(src.response.headers.get(CURSOR_HEADER))
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
                if self._aborted:
                    return
                if not reconnect:
                    raise Unreachable(f"event stream from {self.settings.url} lost ({type(exc).__name__})") from exc
                self._sleep(1.0)


    def abort(self) -> None:
        """End :meth:`events` now, from another thread: the iterator stops (no reconnect) instead of waiting for the
        hub's next event. The socket of the stream being read is shut down: closing the client would not wake a
        read blocked in another thread (POSIX ``close`` does not; ``shutdown`` does). Harmless when nothing streams.
        """
        self._aborted = True
        response = self._streaming
        network = response.extensions.get("network_stream") if response is not None else None
        sock = network.get_extra_info("socket") if network is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the hub or the reader
                sock.shutdown(socket.SHUT_RDWR)


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
