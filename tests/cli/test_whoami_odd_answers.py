"""``coord whoami`` against a hub whose ``GET /api/coord/whoami`` answer has an odd shape: one line, exit 3.

It ended in a Python traceback (``'list' object has no attribute 'get'``) when
the answer was no object, and printed ``session 5`` or ``session (none)`` for
one with a session id that is no string or none at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import serving
from tests.coordcli import Coord, isolated_env

ODD = [[], "ops", {"session_id": 5, "admin": False}, {}, {"session_id": "ops"}, {"session_id": "ops", "admin": "no"},
       None]


class _Whoami(BaseHTTPRequestHandler):
    """Answers every GET with 200 and the JSON ``server.answer``."""

    server: _Hub

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        body = json.dumps(self.server.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Hub(ThreadingHTTPServer):
    daemon_threads = True
    answer: Any = None


@pytest.fixture
def odd_hub() -> Iterator[_Hub]:
    with serving(_Hub(("127.0.0.1", 0), _Whoami)) as srv:
        yield srv


@pytest.mark.parametrize("answer", ODD, ids=json.dumps)
def test_an_odd_whoami_answer_is_one_line_and_exit_3(odd_hub: _Hub, tmp_path: Path, answer: Any) -> None:
    odd_hub.answer = answer
    url = f"http://127.0.0.1:{odd_hub.server_address[1]}"
    coord = Coord(tmp_path, isolated_env(tmp_path, COORD_URL=url, COORD_TOKEN="token-for-the-odd-hub"))
    r = coord.fails(3, "whoami")  # no traceback (Coord checks), one line
    assert r.out == ""
    assert r.err == (f"coord: hub at {url} is unreachable: its answer to GET /api/coord/whoami is not an object "
                     "with session_id (a string or null) and admin (true or false)\n")
    r = coord("whoami", "--json")
    assert r.code == 3 and r.json()["error"]["code"] == "unreachable"


def test_a_whoami_answer_of_the_hubs_shape_is_shown(odd_hub: _Hub, tmp_path: Path) -> None:
    odd_hub.answer = {"session_id": None, "admin": True, "presence": None}  # an admin token without a session
    url = f"http://127.0.0.1:{odd_hub.server_address[1]}"
    coord = Coord(tmp_path, isolated_env(tmp_path, COORD_URL=url, COORD_TOKEN="token-for-the-odd-hub"))
    assert coord.ok("whoami").out.splitlines()[:2] == [
        f"session (none) (token from COORD_TOKEN) on {url} (from COORD_URL)", "admin: yes"]
