"""Fixtures for the client tests: a loopback HTTP listener that plays the attacker and records what reaches it."""

from __future__ import annotations

import contextlib
import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from coordhub.client.client import CoordClient
from coordhub.client.settings import ClientSettings
from tests.client.test_wire import Canned

TOKEN = "coord_test"  # the token a canned hub's clients send


@pytest.fixture
def canned() -> Iterator[Canned]:
    """A loopback TCP listener that answers every request with ``canned.answer`` (:class:`Canned`)."""
    server = Canned()
    yield server
    server.close()


def sync_client(url: str, tmp_path: Path, timeout: float = 5.0) -> CoordClient:
    """A sync client for ``url`` with :data:`TOKEN`, no session, and its queue in ``tmp_path``."""
    return CoordClient(ClientSettings(url=url, token=TOKEN, session=None, user=None, machine=None,
                                      queue_file=tmp_path / "coord-queue.jsonl", timeout=timeout))


class _Record(BaseHTTPRequestHandler):
    """Records every request (method, path, headers, body) and answers like a hub would, to invite a token."""

    server: Listener

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                                 "body": body})
        payload = json.dumps(self.server.health if self.path == "/health" else []).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Listener(ThreadingHTTPServer):
    """The attacker's server on a free loopback port; ``seen`` is every request it got.

    Its ``/health`` claims to be a hub that needs tokens (and, if set, a given
    hub id), the answer most likely to make a client send one.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Record)
        self.seen: list[dict[str, Any]] = []
        self.health: dict[str, Any] = {"status": "ok", "database": "connected", "auth": True, "hub_id": "attacker"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def received(self, secret: str) -> list[dict[str, Any]]:
        """The requests that carried ``secret`` anywhere (path, a header, the body)."""
        return [r for r in self.seen if secret in r["path"] or secret.encode() in r["body"]
                or any(secret in v for v in r["headers"].values())]

    def credentialed(self) -> list[dict[str, Any]]:
        """The requests that carried any credential header."""
        return [r for r in self.seen if {k.lower() for k in r["headers"]} & {"authorization", "x-coord-session"}]


S = TypeVar("S", bound=socketserver.BaseServer)


@contextlib.contextmanager
def serving(srv: S) -> Iterator[S]:
    """Run ``srv`` on a thread for the ``with`` block, then shut it down and close it."""
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


@pytest.fixture
def attacker() -> Iterator[Listener]:
    """A recording listener on loopback, shut down after the test."""
    with serving(Listener()) as srv:
        yield srv
