"""A hub on loopback whose answers are scripted per request: the hub's own by default, any shape a test sets.

The default answers are the real hub's, made by the functions that render
them there (:func:`coordhub.core.messages.render`,
:func:`coordhub.core.presence.render`, :func:`coordhub.core.events.render`)
and wrapped as the routes of ``coordhub.api.routes`` wrap them (``whoami``,
``notifications``: docs/api.md). A test replaces the answer to one
``(method, path)`` with a shape no hub gives (``answers``: any JSON value;
``raw``: a body that is not JSON) to play a hostile or broken hub. Each answer
is a complete HTTP/1.1 ``200 OK`` with ``Connection: close`` (one request per
connection, :class:`tests.client.test_wire.Canned`); an unscripted path is a
404 in the hub's error envelope.
"""

from __future__ import annotations

import json
from typing import Any

from coordhub.core import events, messages, presence
from tests.client.test_wire import Canned

API = "/api/coord"
ME = "backend"
PEER = "orchestrator"
MESSAGE_ID = "019ad3f0-6c1e-7a4b-8f21-3c9d0e5b7a12"
NOW = 1_780_000_000.0

MESSAGE_ROW: dict[str, Any] = {
    "id": MESSAGE_ID, "seq": 7, "from_session": PEER, "to_session": ME, "project_key": None, "subject": "review?",
    "body": "branch x", "thread_id": None, "reply_to": None, "importance": "normal",
    "message_type": "READY_FOR_REVIEW", "requires_ack": 1, "created_at": NOW - 60, "read_at": NOW - 30,
    "acked_at": NOW - 10, "delivered_at": NOW - 50, "deliveries": 1}
PRESENCE_ROW: dict[str, Any] = {"session_id": ME, "incarnation": 2, "registered_at": NOW - 100,
                                "last_heartbeat": NOW - 5, "client": "coordhub-seed002",
                                "client_session": "claude-123", "cwd": "/w/backend"}
EVENT_ROW: dict[str, Any] = {
    "id": 41, "kind": "message.sent", "session_id": PEER, "project_key": None, "subject_id": MESSAGE_ID,
    "target": ME, "created_at": NOW - 60,
    "payload": json.dumps({"seq": 7, "to_session": ME, "subject": "review?", "importance": "normal",
                           "message_type": "READY_FOR_REVIEW", "thread_id": None, "requires_ack": True})}


def hub_answers() -> dict[tuple[str, str], Any]:
    """What a hub answers ``ME`` for each request the seed-002 API makes, by ``(method, path)``."""
    message = messages.render(MESSAGE_ROW, ME)
    mine = presence.render(PRESENCE_ROW, NOW)
    reply = messages.render({**MESSAGE_ROW, "id": "019ad3f0-6c1e-7a4b-8f21-3c9d0e5b7a13", "seq": 8,
                             "from_session": ME, "to_session": PEER, "reply_to": MESSAGE_ID,
                             "read_at": None, "acked_at": None}, ME)
    return {
        ("GET", "/health"): {"status": "ok", "database": "connected", "auth": True, "hub_id": "scripted"},
        ("GET", f"{API}/whoami"): {"session_id": ME, "admin": False, "presence": mine},
        ("GET", f"{API}/messages"): [message],
        ("POST", f"{API}/messages"): reply,
        ("GET", f"{API}/messages/{MESSAGE_ID}"): message,
        ("POST", f"{API}/messages/{MESSAGE_ID}/ack"): {**message, "already": False},  # as messages.ack answers
        ("GET", f"{API}/presence"): [mine, presence.render({**PRESENCE_ROW, "session_id": PEER}, NOW)],
        ("POST", f"{API}/presence/register"): mine,
        ("POST", f"{API}/presence/heartbeat"): mine,
        ("POST", f"{API}/presence/deregister"): presence.render({**PRESENCE_ROW, "deregistered_at": NOW}, NOW),
        ("GET", f"{API}/notifications"): {"cursor": 40, "events": [events.render(EVENT_ROW)]},
        ("POST", f"{API}/notifications/ack"): {"cursor": 41},
    }


class ScriptedHub:
    """The loopback hub: ``answers`` (JSON values) and ``raw`` (bodies) by ``(method, path)``; ``asked`` is every
    ``(method, path)`` requested, in order."""

    def __init__(self) -> None:
        self.answers = hub_answers()
        self.raw: dict[tuple[str, str], bytes] = {}
        self.asked: list[tuple[str, str]] = []
        self._server = Canned()
        self._server.answer = self._answer
        self.url = self._server.url

    def close(self) -> None:
        self._server.close()

    def _answer(self, request: bytes) -> bytes:
        line = request.split(b"\r\n", 1)[0].split(b" ")
        if len(line) != 3:
            return b""
        key = (line[0].decode(), line[1].split(b"?", 1)[0].decode())
        self.asked.append(key)
        if key in self.raw:
            return _http("200 OK", self.raw[key])
        if key in self.answers:
            return _http("200 OK", json.dumps(self.answers[key]).encode())
        error = {"error": {"code": "not_found", "message": f"no route {key[0]} {key[1]}"}}
        return _http("404 Not Found", json.dumps(error).encode())


def _http(status: str, body: bytes) -> bytes:
    return (b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
            % (status.encode(), len(body), body))
