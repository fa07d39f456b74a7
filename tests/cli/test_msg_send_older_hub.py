"""``coord msg send MACHINE`` against a hub from before ``to_machine``: asked again with seed 000's session.

A newer CLI sends a bare name as ``to_machine`` so the hub picks the session
(``core.identity.machine_recipient``); a hub that does not know the field
refuses it (422, unknown field), and every ``coord msg send HOWARD-HOME`` —
seed 000's everyday form — failed until the hub was upgraded. The stand-in
below answers as such a hub does (its envelope copied from one). A send queued
while the hub was down is replayed the same way (client.downgrade): it was
refused at its replay and moved to the queue's rejected file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from coordhub.cli.exits import EXIT_UNREACHABLE
from coordhub.headers import IDEMPOTENCY_HEADER
from tests.client.conftest import serving
from tests.conftest import free_port
from tests.coordcli import Coord, isolated_env

UNKNOWN = {"error": {"code": "invalid", "message": "unknown field 'to_machine'",
                     "problems": [{"field": "to_machine", "problem": "unknown field 'to_machine'"}]},
           "detail": "unknown field 'to_machine'"}


class _OlderHub(BaseHTTPRequestHandler):
    """POST /api/coord/messages as a hub from before ``to_machine`` answers it; every body and idempotency key is
    kept."""

    server: _Hub

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        """``/health`` (what ``coord sync`` asks first) as a healthy hub that names no key retention."""
        status, answer = (200, {"status": "ok"}) if self.path == "/health" else (404, {})
        self._answer(status, answer)

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        self.server.keys.append(self.headers.get(IDEMPOTENCY_HEADER))
        if "to_machine" not in body and self.server.unanswered > 0:  # taken, its answer lost on the way back
            self.server.unanswered -= 1
            self.close_connection = True
            return
        status, answer = (422, UNKNOWN) if "to_machine" in body else (201, {
            "id": "7a0c1f52-3b7e-4d55-9a55-0b6f7d1e2c11", "to_session": body["to_session"], "recipient_known": True,
            "subject": body["subject"], "body": body["body"]})
        self._answer(status, answer)

    def _answer(self, status: int, answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Hub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str | None] = []
        self.unanswered = 0  # sends (to_session) to close the connection on without an answer


@pytest.fixture
def older_hub() -> Iterator[_Hub]:
    with serving(_Hub(("127.0.0.1", 0), _OlderHub)) as srv:
        yield srv


def test_a_machine_name_reaches_an_older_hub_as_the_machines_session(older_hub: _Hub, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{older_hub.server_address[1]}"
    coord = Coord(tmp_path, isolated_env(tmp_path, COORD_URL=url, COORD_TOKEN="token-for-the-older-hub"))
    r = coord.ok("msg", "send", "HOWARD-HOME", "review please", "PR 12 is ready")
    assert r.out == "sent 7a0c1f52-3b7e-4d55-9a55-0b6f7d1e2c11 to HOWARD-HOME/claude-main\n"
    first, second = older_hub.bodies
    assert first["to_machine"] == "HOWARD-HOME" and first["to_session"] is None
    assert second["to_session"] == "HOWARD-HOME/claude-main" and "to_machine" not in second
    assert {k: v for k, v in second.items() if k != "to_session"} == {
        k: v for k, v in first.items() if k not in ("to_session", "to_machine")}



def test_a_send_queued_while_the_hub_was_down_reaches_an_older_hub_once(tmp_path: Path) -> None:
    port = free_port()
    coord = Coord(tmp_path, isolated_env(tmp_path, COORD_URL=f"http://127.0.0.1:{port}",
                                         COORD_TOKEN="token-for-the-older-hub"))
    coord.queued("msg", "send", "HOWARD-HOME", "review please", "PR 12 is ready")
    with serving(_Hub(("127.0.0.1", port), _OlderHub)) as hub:
        first = coord.json("sync")
        again = coord.json("sync")
    assert (first["applied"], first["rejected"], first["pending"]) == (1, 0, 0)
    assert (again["applied"], again["rejected"]) == (0, 0)  # nothing left to send twice
    refused, sent = hub.bodies
    assert refused["to_machine"] == "HOWARD-HOME" and refused["to_session"] is None
    assert sent["to_session"] == "HOWARD-HOME/claude-main" and "to_machine" not in sent
    assert hub.keys[0] and hub.keys == [hub.keys[0]] * 2  # one idempotency key: the hub applies it once
    assert not list(tmp_path.rglob("*.rejected.jsonl"))


def test_a_replayed_send_whose_answers_are_lost_is_sent_again_under_its_key(tmp_path: Path) -> None:
    """The replay's second request (as MACHINE/claude-main) reaches the hub and its answer is lost, again at each
    retry: the send stays queued and the next sync asks both ways again, every request under the one idempotency
    key, so a hub that took one of them applies it once; nothing is moved to the rejected file."""
    port = free_port()
    coord = Coord(tmp_path, isolated_env(tmp_path, COORD_URL=f"http://127.0.0.1:{port}",
                                         COORD_TOKEN="token-for-the-older-hub"))
    coord.queued("msg", "send", "HOWARD-HOME", "review please", "PR 12 is ready")
    with serving(_Hub(("127.0.0.1", port), _OlderHub)) as hub:
        hub.unanswered = 1_000  # every answer to the downgraded send lost during the first sync
        stopped = coord("sync", "--json")
        tried = len(hub.bodies)
        hub.unanswered = 0
        applied = coord.json("sync")
    lost = stopped.json()
    assert stopped.code == EXIT_UNREACHABLE and "RemoteProtocolError" in lost["stopped"]
    assert (lost["applied"], lost["rejected"], lost["pending"]) == (0, 0, 1)
    assert (applied["applied"], applied["rejected"], applied["pending"]) == (1, 0, 0)
    downgraded = [("to_machine" in b, b["to_session"]) for b in hub.bodies]
    assert downgraded[0] == downgraded[tried] == (True, None)  # each sync asks with to_machine first
    assert set(downgraded[1:tried]) == set(downgraded[tried + 1:]) == {(False, "HOWARD-HOME/claude-main")}
    assert hub.keys[0] and hub.keys == [hub.keys[0]] * len(hub.keys)
    assert not list(tmp_path.rglob("*.rejected.jsonl"))
