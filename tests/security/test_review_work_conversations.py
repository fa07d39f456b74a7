"""A review of the hub side of conversations (seed 004) by an ordinary session, over HTTP on both backends.

``GET /conversations/status`` counts every pending turn ever sent to a machine's addresses and reads every
session that declared one, for any machine any session names: it runs on a reader thread, as ``/addresses`` does,
never on the event loop. An unsigned file whose lines end in a lone CR is stored saying the sequence the hub gave
it, not the one its sender wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from coordhub.core import conversations, orgturn
from tests.conftest import Api, on_event_loop
from tests.conversations.conftest import org
from tests.conversations.test_turns_api import agent, send

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
    for who in (api.admin, alice):  # any machine's (an admin) and one's own
        r = api.get(f"{URL}/status", params={"machine": "velox"}, headers=who)
        assert r.status_code == 200, r.text
        assert [(p["name"], p["pending_count"]) for p in r.json()["projects"]] == [("career", 1)]
        assert seen == {"status": False}, seen
        seen.clear()


def test_an_unsigned_file_with_lone_cr_line_ends_is_stored_with_the_sequence_it_got(api: Api) -> None:
    """The parser ends a line at a lone CR, but the stored file's SEQUENCE was set as if the whole frontmatter were
    one line: it was appended after the body, and the frontmatter went on saying the sender's SEQUENCE (7 here,
    where the hub gave 1), so the file a receiver syncs said another sequence than the hub (found by a review)."""
    alice = agent(api, "velox/alice", "velox", "career")
    agent(api, "ratio/bob", "ratio", "web")
    content = org(conversation="cr-only", sequence=7, body="Please fix it.").replace("\n", "\r")
    r = send(api, alice, "ratio.web", content)
    assert r.status_code == 201, r.text
    turn = r.json()
    assert (turn["sequence"], turn["stated_sequence"], turn["body"]) == (1, 7, "Please fix it.")
    keys, body = orgturn.split(turn["content"])
    assert (keys["SEQUENCE"], keys["TIMESTAMP"]) == ("1", "2026-04-27T09:11:42Z"), turn["content"]
    assert body == "Please fix it."
    again = api.get(f"{URL}/turns/{turn['id']}", headers=alice).json()
    assert (again["content"], again["body"]) == (turn["content"], turn["body"])
