"""A review of the hub side of conversations (seed 004) by an ordinary session, over HTTP on both backends.

``GET /conversations/status`` counts every pending turn ever sent to a machine's addresses and reads every
session that declared one, for any machine any session names: it runs on a reader thread, as ``/addresses`` does,
never on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from coordhub.core import conversations
from tests.conftest import Api, on_event_loop
from tests.conversations.test_turns_api import agent

URL = "/api/coord/conversations"


def test_a_machines_status_is_read_off_the_event_loop(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = agent(api, "velox/alice", "velox", "career")
    mallory = agent(api, "ostra/mallory", "ostra", "evil")
    r = api.post(f"{URL}/turns", json={"to": "velox.career", "conversation_id": "c1", "type": "request",
                                       "body": "b"}, headers=mallory)
    assert r.status_code == 201, r.text
    seen: dict[str, bool] = {}
    real: Callable[..., Any] = conversations.status

    def spying(*args: Any, **kwargs: Any) -> Any:
        seen["status"] = on_event_loop()
        return real(*args, **kwargs)

    monkeypatch.setattr(conversations, "status", spying)
    for who in (mallory, alice):  # another machine's (counts only) and one's own
        r = api.get(f"{URL}/status", params={"machine": "velox"}, headers=who)
        assert r.status_code == 200, r.text
        assert [(p["name"], p["pending_count"]) for p in r.json()["projects"]] == [("career", 1)]
        assert seen == {"status": False}, seen
        seen.clear()

