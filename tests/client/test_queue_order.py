"""Queued writes reach the hub before newer ones (:mod:`coordhub.client.client`), through a flaky proxy.

A real hub behind a small loopback proxy that can be down (502 for every
API request) or busy (503 with ``Retry-After: 1`` for the next N writes).
The review's case: a component set to 1.0 while the hub was down, then to
2.0 when it came back busy; the replay met one 503 and gave up without
waiting, 2.0 was sent anyway, and the next drain put 1.0 over 2.0.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.client import ClientSettings, CoordClient, Queued
from coordhub.client.queue import FAILED, MAX_FAILED_REPLAYS
from tests.client.conftest import serving
from tests.conftest import LiveHub

SESSION = "DESKTOP-0O8A1RL/claude-main"


class _Forward(BaseHTTPRequestHandler):
    server: FlakyProxy

    def _go(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        self.server.seen.append((self.server.mode, self.command, self.path))
        if self.server.hang and self.path.startswith(self.server.hang):  # a hub that never answers this
            self.server.closing.wait()
            return
        if self.server.mode == "down" and self.path.startswith("/api"):
            return self._reply(502, b'{"error":{"code":"bad_gateway","message":"down"}}')
        if body and b"POISON" in body or self.path.partition("?")[0] in self.server.broken:  # the hub fails it
            return self._reply(500, b'{"error":{"code":"internal","message":"bug"}}')
        if self.server.gateway and self.command != "GET":  # a gateway's own page: no envelope
            return self._reply(self.server.gateway.pop(0), b"<html><body>gateway error</body></html>")
        if self.server.busy and self.command != "GET":
            self.server.busy -= 1
            return self._reply(503, b'{"error":{"code":"busy","message":"busy"}}', {"Retry-After": "1"})
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(self.server.upstream + self.path, data=body, method=self.command,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                code, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            code, data = e.code, e.read()
        self._reply(code, data)

    def _reply(self, code: int, data: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _go

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FlakyProxy(ThreadingHTTPServer):
    """Forwards to ``upstream``; ``mode`` "down" answers 502, ``busy`` > 0 answers that many writes 503; a request
    whose path starts with ``hang`` is never answered (held until the proxy closes); one to a path in ``broken``, or
    whose body holds ``POISON``, is answered 500 (a hub that fails it)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream
        self.mode = "up"
        self.busy = 0
        self.gateway: list[int] = []  # statuses the next writes are answered, one each, without the hub
        self.seen: list[tuple[str, str, str]] = []
        self.hang: str | None = None
        self.broken: set[str] = set()
        self.closing = threading.Event()

    def server_close(self) -> None:
        self.closing.set()  # the requests held by ``hang`` end, unanswered
        super().server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def proxy(live_hub: LiveHub) -> Iterator[FlakyProxy]:
    with serving(FlakyProxy(live_hub.url)) as srv:
        yield srv


def _version(hub: LiveHub, token: str) -> list[str]:
    r = httpx2.get(hub.url + "/api/coord/components", params={"project_key": "reorderproj"},
                   headers={"Authorization": f"Bearer {token}"})
    return [c["version"] for c in r.json()]


def _client(proxy: FlakyProxy, token: str, tmp_path: Path, waits: list[float]) -> CoordClient:
    settings = ClientSettings(url=proxy.url, token=token, session=None, user=None, machine=None,
                              queue_file=tmp_path / ".claude" / "coord-queue.jsonl", timeout=10.0)
    return CoordClient(settings, sleep=waits.append)  # Retry-After is recorded, not slept: the proxy is stateful


def test_a_replay_waits_out_retry_after_once_so_the_newer_write_lands_last(
        live_hub: LiveHub, proxy: FlakyProxy, tmp_path: Path) -> None:
    token = live_hub.token(SESSION)
    waits: list[float] = []
    with _client(proxy, token, tmp_path, waits) as c:
        proxy.mode = "down"
        assert isinstance(c.set_component("reorderproj", "server", "deployed", version="1.0"), Queued)
        proxy.mode, proxy.busy = "up", 1  # back, but busy for one request: the replay's
        assert not isinstance(c.set_component("reorderproj", "server", "deployed", version="2.0"), Queued)
        assert waits == [1.0]
        assert len(c.queue) == 0
        c.sync()
    assert _version(live_hub, token) == ["2.0"]


def test_a_write_after_a_stopped_drain_is_queued_behind_the_older_ones(
        live_hub: LiveHub, proxy: FlakyProxy, tmp_path: Path) -> None:
    token = live_hub.token(SESSION)
    waits: list[float] = []
    with _client(proxy, token, tmp_path, waits) as c:
        proxy.mode = "down"
        assert isinstance(c.set_component("reorderproj", "server", "deployed", version="1.0"), Queued)
        proxy.mode, proxy.busy = "up", 2  # the replay and its one retry fail; the hub is fine after that
        newer = c.set_component("reorderproj", "server", "deployed", version="2.0")
        assert isinstance(newer, Queued) and "earlier queued writes go first" in newer.reason, newer
        assert [e.body["version"] for e in c.queue.pending()] == ["1.0", "2.0"]
        assert c.inbox() == []  # a read is still sent (and drains the queue, in order)
        assert len(c.queue) == 0
    assert _version(live_hub, token) == ["2.0"]


def test_a_queued_write_the_hub_always_fails_holds_back_no_newer_write_and_is_given_up(
        live_hub: LiveHub, proxy: FlakyProxy, tmp_path: Path) -> None:
    """Review r6: one queued write answered 500 every time held every later write in the queue for good."""
    token = live_hub.token(SESSION)
    waits: list[float] = []
    with _client(proxy, token, tmp_path, waits) as c:
        assert isinstance(c.set_component("reorderproj", "server", "deployed", version="POISON"), Queued)
        newer = c.set_component("reorderproj", "server", "deployed", version="2.0")
        assert not isinstance(newer, Queued), newer  # the hub answered: sent, not queued behind
        assert _version(live_hub, token) == ["2.0"]
        assert c.last_drain is not None and c.last_drain.stopped == FAILED and c.stop_reason == "hub answered 500"
        [stuck] = c.queue.pending()
        assert stuck.failed == 1 and stuck.reached is True
        for _ in range(MAX_FAILED_REPLAYS - 2):
            assert c.sync().stopped == FAILED
        d = c.sync()
        assert (d.gave_up, d.left, d.stopped) == (1, 0, None), d
        [line] = c.queue.rejected.read_text().splitlines()
        assert f"answered 5xx to {MAX_FAILED_REPLAYS} replays" in json.loads(line)["gave_up"]
    assert _version(live_hub, token) == ["2.0"]


@pytest.mark.parametrize("outage", ["down", "busy"])
def test_a_queued_write_is_not_given_up_while_the_hub_is_down_behind_its_gateway(
        live_hub: LiveHub, proxy: FlakyProxy, tmp_path: Path, outage: str) -> None:
    """A gateway's 502 (its hub is down) or 503 (unavailable) is an outage, not an answer to this write: however
    many commands run during it, the queued write is replayed when the hub is back, never set aside as given up."""
    token = live_hub.token(SESSION)
    waits: list[float] = []
    with _client(proxy, token, tmp_path, waits) as c:
        proxy.mode = "down"
        assert isinstance(c.set_component("reorderproj", "server", "deployed", version="1.0"), Queued)
        proxy.mode, proxy.busy = ("down", 0) if outage == "down" else ("up", 10 * MAX_FAILED_REPLAYS)
        for _ in range(MAX_FAILED_REPLAYS + 1):
            d = c.sync()
            assert (d.gave_up, d.left) == (0, 1), d
        proxy.mode, proxy.busy = "up", 0
        d = c.sync()
        assert (d.applied, d.gave_up, d.left) == (1, 0, 0), d
        assert not c.queue.rejected.exists()
    assert _version(live_hub, token) == ["1.0"]


@pytest.mark.parametrize("status", [502, 504])
def test_a_write_after_a_drain_a_gateway_stopped_is_queued_behind_the_older_ones(
        live_hub: LiveHub, proxy: FlakyProxy, tmp_path: Path, status: int) -> None:
    """A gateway's 502 or 504 to a replay is an outage (0c90e33), so the drain stops there as for a 503; a newer
    write must then wait behind the entry left, or, let through by the gateway a moment later, it lands first and
    the next drain puts the older value over it."""
    token = live_hub.token(SESSION)
    waits: list[float] = []
    with _client(proxy, token, tmp_path, waits) as c:
        proxy.mode = "down"
        assert isinstance(c.set_component("reorderproj", "server", "deployed", version="1.0"), Queued)
        proxy.mode, proxy.gateway = "up", [status]  # the replay meets the gateway's error once; fine after that
        newer = c.set_component("reorderproj", "server", "deployed", version="2.0")
        assert isinstance(newer, Queued) and "earlier queued writes go first" in newer.reason, newer
        d = c.sync()
        assert (d.applied, d.left) == (2, 0), d
    assert _version(live_hub, token) == ["2.0"]
