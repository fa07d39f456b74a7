"""A turn sent as fields without a title takes its conversation's (``coord conv send --title``: "default: the
conversation's"); it took the conversation id (review, seed-004 user run: a reply's file said ``#+TITLE: deploy-x``
under a conversation titled "Deploy X")."""

from __future__ import annotations

from tests.conftest import Api
from tests.conversations.conftest import org
from tests.conversations.test_turns_api import URL, agent, send


def fields(api: Api, headers: dict[str, str], to: str, conversation: str, **extra: str) -> dict[str, str]:
    r = api.post(f"{URL}/turns", headers=headers, json={"to": to, "conversation_id": conversation,
                                                         "type": "progress", "body": "on it", **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_field_turn_without_a_title_takes_its_conversations(api: Api) -> None:
    career = agent(api, "ratio/career", "ratio", "career")
    homelab = agent(api, "velox/homelab", "velox", "homelab")
    assert send(api, career, "velox.homelab", org(title="Prep fix-up")).status_code == 201
    reply = fields(api, homelab, "ratio.career", "prep-fixup")
    assert reply["title"] == "Prep fix-up" and "#+TITLE: Prep fix-up\n" in reply["content"]
    assert fields(api, homelab, "ratio.career", "prep-fixup", title="Step 2")["title"] == "Step 2"
    assert fields(api, career, "velox.homelab", "new-one")["title"] == "new-one"  # a new conversation: its id


def test_an_outsider_learns_no_title(api: Api) -> None:
    career = agent(api, "ratio/career", "ratio", "career")
    agent(api, "velox/homelab", "velox", "homelab")
    outsider = agent(api, "mars/spy", "mars", "spy")
    assert send(api, career, "velox.homelab", org(title="Secret plan")).status_code == 201
    r = api.post(f"{URL}/turns", headers=outsider, json={"to": "ratio.career", "conversation_id": "prep-fixup",
                                                          "type": "progress", "body": "hi"})
    assert r.status_code == 404 and "Secret plan" not in r.text, r.text
