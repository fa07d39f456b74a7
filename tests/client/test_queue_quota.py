"""A queued write the hub refuses for a daily quota (429 ``write_quota``) holds no newer write back.

The real app in-process (``api``), reached by the sync client through a
transport that hands each request to it. A rate limit's 429 is "not now, a
moment later": a newer write sent at once could land before the entry left,
so it is queued behind (tests/client/test_queue_rate_limit.py). A daily
quota's 429 refuses only writes of its kind until the next UTC day: holding
every newer write behind it would keep this session's messages off the hub
for the rest of the day.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx2
import pytest

from coordhub.client import ClientSettings, CoordClient, Queued
from coordhub.client.queue import Entry
from coordhub.client.trust import origin
from coordhub.core import quota
from tests.conftest import Api

URL = "http://127.0.0.1:8001"
SESSION = "DESKTOP-0O8A1RL/claude-main"
PEER = "DESKTOP-0O8A1RL/claude-peer"


def _client(api: Api, tmp_path: Path, token: str) -> CoordClient:
    def handler(request: httpx2.Request) -> httpx2.Response:
        r = api.client.request(request.method, request.url.raw_path.decode(), content=request.content,
                               headers={k: v for k, v in request.headers.items() if k.lower() != "host"})
        return httpx2.Response(r.status_code, headers=r.headers, content=r.content)

    settings = ClientSettings(url=URL, token=token, session=None, user=None, machine=None,
                              queue_file=tmp_path / ".claude" / "coord-queue.jsonl", timeout=10.0)
    return CoordClient(settings, transport=httpx2.MockTransport(handler), sleep=lambda s: None)


def test_a_write_quota_refusal_in_the_queue_does_not_hold_a_newer_message(api: Api, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quota, "MAX_WRITES_PER_DAY", 1)
    headers = api.token(SESSION)
    peer = api.token(PEER)
    assert api.post("/api/coord/todos", json={"text": "today's one todo"}, headers=headers).status_code == 201
    with _client(api, tmp_path, headers["Authorization"].removeprefix("Bearer ")) as c:
        c.queue.append(Entry("POST", "/api/coord/todos", {"text": "queued while the hub was down"},
                             str(uuid.uuid4()), actor=c.actor, hub=origin(URL), reached=False))
        sent = c.call("POST", "/api/coord/messages", body={"to_session": PEER, "subject": "s", "body": "b"})
        assert c.last_drain is not None and c.last_drain.left == 1  # the todo waits for tomorrow's quota
        assert not isinstance(sent, Queued), sent  # the message is not the quota's: it went
    inbox = api.get("/api/coord/messages", headers=peer).json()
    assert [m["subject"] for m in inbox] == ["s"]
