"""Event streams end with their credentials (review, MEDIUM), through a real ``coord serve`` and real sockets.

A stream was authenticated once, when it opened, and then outlived sign-out
and token revocation. Now ``web.signed_out`` ends the streams its cookie
opened, ``token.revoked`` every stream of the session it names (through
whichever hub process: the events reach every process through its bus), and
each stream ends after ``stream_max_seconds`` so that its client reconnects
and authenticates again; the Python client does so without losing or
repeating an event.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from coordhub.client.client import CoordClient
from coordhub.client.settings import ClientSettings
from coordhub.core import websessions
from tests.conftest import LiveHub, scratch_database
from tests.web.conftest import start_hub

END = b"\r\n0\r\n\r\n"  # the last chunk of a chunked body: the hub ended the response


class RawStream:
    """``GET /api/coord/events`` on a raw socket; a thread collects the bytes the hub sends."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.s.sendall(f"GET /api/coord/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{lines}\r\n".encode())
        self.data = b""
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                got = self.s.recv(65536)
            except OSError:
                break
            if not got:
                break
            self.data += got
        self.closed = True

    def wait_for(self, what: bytes, timeout: float = 10.0) -> float:
        """Seconds until ``what`` arrived (fails past ``timeout``)."""
        start = time.monotonic()
        while what not in self.data:
            assert time.monotonic() - start < timeout, (what, self.data[-400:])
            time.sleep(0.01)
        return time.monotonic() - start

    def ended(self) -> bool:
        return self.data.endswith(END)

    def close(self) -> None:
        self.s.close()


def _cookie(url: str, signed: httpx2.Response) -> str:
    """The ``Cookie`` header of the web session a sign-in at ``url`` answered (its cookie is named by port)."""
    name = websessions.cookie_name(url.split("//", 1)[1])
    return f"{name}={signed.cookies[name]}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _broadcast(hub: LiveHub, subject: str) -> None:
    r = httpx2.post(hub.url + "/api/coord/messages", headers=_bearer(hub.admin_token), json={"subject": subject})
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    h = start_hub(LiveHub(tmp_path_factory.mktemp("ends") / "hub"))
    try:
        yield h
    finally:
        h.stop()


def test_sign_out_and_revocation_end_the_streams_they_authenticated(hub: LiveHub) -> None:
    name = f"m1/temp-{uuid.uuid4().hex[:6]}"
    token = hub.token(name)
    signed = httpx2.post(hub.url + "/api/coord/web/session", json={"token": token})
    assert signed.status_code == 201, signed.text
    cookie = _cookie(hub.url, signed)
    secret = signed.json()["csrf_token"]
    by_cookie = RawStream(hub.port, {"Cookie": cookie, websessions.CSRF_HEADER: secret})
    by_token = RawStream(hub.port, _bearer(token))
    other = RawStream(hub.port, _bearer(hub.token(f"m2/other-{uuid.uuid4().hex[:6]}")))
    streams = (by_cookie, by_token, other)
    try:
        for s in streams:
            s.wait_for(b": connected")
        _broadcast(hub, "before")
        for s in streams:
            s.wait_for(b"before")

        r = httpx2.delete(hub.url + "/api/coord/web/session",
                          headers={"Cookie": cookie, websessions.CSRF_HEADER: secret, "Origin": hub.url})
        assert r.status_code == 200, r.text
        took = by_cookie.wait_for(b": end: signed_out\n\n" + END, timeout=5)
        assert took < 2.0  # promptly: the sign-out's event ends it as the bus publishes it
        assert not by_token.ended() and not other.ended()  # the same token's bearer stream is not the web session

        r = httpx2.delete(f"{hub.url}/api/coord/tokens/{name}", headers=_bearer(hub.admin_token))
        assert r.status_code == 200, r.text
        took = by_token.wait_for(b": end: revoked\n\n" + END, timeout=5)
        assert took < 2.0
        assert not other.ended()

        _broadcast(hub, "after-the-end")
        other.wait_for(b"after-the-end")
        time.sleep(0.3)
        assert b"after-the-end" not in by_cookie.data and b"after-the-end" not in by_token.data
        # and the revoked credentials cannot open a stream again
        again = httpx2.get(hub.url + "/api/coord/events", headers=_bearer(token), timeout=5)
        assert again.status_code == 401
    finally:
        for s in streams:
            s.close()


def test_a_web_session_pushed_out_by_newer_sign_ins_ends_its_streams(hub: LiveHub) -> None:
    # a token keeps its newest PER_TOKEN web sessions; the one a newer sign-in pushed out was deleted without its
    # web.signed_out, so a stream its cookie opened went on until its lifetime ended
    token = hub.token(f"m1/many-{uuid.uuid4().hex[:6]}")
    first = httpx2.post(hub.url + "/api/coord/web/session", json={"token": token})
    assert first.status_code == 201, first.text
    cookie = _cookie(hub.url, first)
    secret = first.json()["csrf_token"]
    oldest = RawStream(hub.port, {"Cookie": cookie, websessions.CSRF_HEADER: secret})
    try:
        oldest.wait_for(b": connected")
        for _ in range(websessions.PER_TOKEN - 1):  # the token's newest PER_TOKEN: the first still among them
            assert httpx2.post(hub.url + "/api/coord/web/session", json={"token": token}).status_code == 201
        _broadcast(hub, "still-in")
        oldest.wait_for(b"still-in")
        assert not oldest.ended()
        assert httpx2.post(hub.url + "/api/coord/web/session", json={"token": token}).status_code == 201
        oldest.wait_for(b": end: signed_out\n\n" + END, timeout=5)
        r = httpx2.get(hub.url + "/api/coord/web/session", headers={"Cookie": cookie, websessions.CSRF_HEADER: secret})
        assert r.json()["signed_in"] is False
    finally:
        oldest.close()


def test_a_stream_ends_after_its_lifetime_and_the_client_resumes_without_a_gap(tmp_path: Path) -> None:
    short = start_hub(LiveHub(tmp_path / "short", args=("--stream-max-seconds", "1")))
    try:
        raw = RawStream(short.port, _bearer(short.admin_token))
        raw.wait_for(b": connected")
        took = raw.wait_for(b": end: lifetime\n\n" + END, timeout=15)  # the ping timer's round: within ~5 s more
        assert took < 10
        raw.close()

        settings = ClientSettings(url=short.url, token=short.admin_token, session=None, user=None, machine=None,
                                  queue_file=tmp_path / "queue.jsonl", timeout=10.0)
        seen: list[str] = []
        connects: list[float] = []

        def follow() -> None:
            client = CoordClient(settings)
            for event in client.events(after=0, kinds="message.", on_connect=lambda: connects.append(time.time())):
                seen.append(event["payload"]["subject"])
                if len(seen) >= 6:
                    return

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        deadline = time.monotonic() + 10
        while not connects:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        for i in range(6):  # spread over several lifetimes: the client reconnects between them
            _broadcast(short, f"m{i}")
            time.sleep(1.5)
        reader.join(30)
        assert seen == [f"m{i}" for i in range(6)]  # none lost, none twice, in order
        assert len(connects) >= 2  # it did reconnect
    finally:
        short.stop()


@pytest.mark.postgres
def test_a_revocation_through_one_hub_ends_the_stream_on_another(tmp_path: Path) -> None:
    with scratch_database("coord_ends") as url:
        a, b = (LiveHub(tmp_path / n, args=("--database-url", url)) for n in ("a", "b"))
        try:
            start_hub(a)
            start_hub(b)
            name = f"m3/temp-{uuid.uuid4().hex[:6]}"
            token = a.token(name)
            on_b = RawStream(b.port, _bearer(token))
            on_b.wait_for(b": connected")
            r = httpx2.delete(f"{a.url}/api/coord/tokens/{name}", headers=_bearer(a.admin_token))
            assert r.status_code == 200, r.text
            took = on_b.wait_for(b": end: revoked\n\n" + END, timeout=5)
            assert took < 2.0
            on_b.close()
        finally:
            b.stop()
            a.stop()


def test_a_client_that_started_from_now_resumes_from_where_its_stream_began(tmp_path: Path) -> None:
    """A stream opened "from now" that ends (its lifetime) before any event reached it: the client resumes
    from the id the hub said the stream started after (``X-Coord-Cursor``), not from a new "now", so an
    event sent while it reconnected still arrives; one sent before it first connected does not."""
    short = start_hub(LiveHub(tmp_path / "short", args=("--stream-max-seconds", "1")))
    try:
        _broadcast(short, "before")
        r = httpx2.get(short.url + "/api/coord/events", headers=_bearer(short.admin_token), timeout=10)
        assert r.headers["X-Coord-Cursor"].isdigit()  # (the stream ended by its lifetime, so the GET returned)
        settings = ClientSettings(url=short.url, token=short.admin_token, session=None, user=None, machine=None,
                                  queue_file=tmp_path / "queue.jsonl", timeout=10.0)
        client = CoordClient(settings)
        asked = {"n": 0}
        identity = client.identity_headers

        def headers() -> dict[str, str]:  # called before each connection: the second one follows the first's end
            asked["n"] += 1
            if asked["n"] == 2:
                _broadcast(short, "between")
            return identity()

        client.identity_headers = headers  # type: ignore[method-assign]
        seen: list[str] = []

        def follow() -> None:
            for event in client.events(kinds="message."):
                seen.append(event["payload"]["subject"])
                return

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        reader.join(30)
        assert asked["n"] >= 2 and seen == ["between"]
    finally:
        short.stop()


def test_a_cookie_stream_ends_when_its_web_session_expires(tmp_path: Path) -> None:
    """A web session expires without an event; a stream it opened ends then (its lifetime is cut to what the
    web session has left), not hours later at ``stream_max_seconds``."""
    import sqlite3

    h = start_hub(LiveHub(tmp_path / "expiring"))
    try:
        signed = httpx2.post(h.url + "/api/coord/web/session", json={"token": h.token("m1/viewer")})
        assert signed.status_code == 201, signed.text
        with sqlite3.connect(h.data_dir / "coord.db") as db:  # as if signed in 12 hours less 2 seconds ago
            db.execute("UPDATE web_sessions SET expires_at = ?", (time.time() + 2,))
        cookie = _cookie(h.url, signed)
        raw = RawStream(h.port, {"Cookie": cookie, websessions.CSRF_HEADER: signed.json()["csrf_token"]})
        try:
            raw.wait_for(b": connected")
            took = raw.wait_for(b": end: lifetime\n\n" + END, timeout=15)  # 2 s, then the ping timer's round
            assert took < 10
        finally:
            raw.close()
    finally:
        h.stop()
