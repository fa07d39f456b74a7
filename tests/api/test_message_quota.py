"""The message quota: what one session may send per UTC day (review, 2026-12-06: forty 512 KiB messages to a
session that never existed grew the database by 42 MB in 1.3 s, and retention never prunes an unread direct
message). Over HTTP on both backends, through the hot send route."""

from __future__ import annotations

import asyncio

import pytest

from coordhub.core import messages, quota
from coordhub.core.identity import Actor
from tests.conftest import Api

A, B = "A/claude-main", "B/claude-main"
MESSAGES = "/api/coord/messages"


def _history(api: Api, headers: dict[str, str]) -> list[str]:
    return [m["subject"] for m in api.get(MESSAGES, params={"to_session": "NOBODY/ghost"}, headers=api.admin).json()]


def test_messages_per_day_are_bounded_per_session(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = api.token(A), api.token(B)
    monkeypatch.setattr(quota, "MAX_MESSAGES_PER_DAY", 3)
    for n in range(3):
        r = api.post(MESSAGES, json={"to_session": "NOBODY/ghost", "subject": f"s{n}", "body": "x"}, headers=a)
        assert r.status_code == 201, r.text
    r = api.post(MESSAGES, json={"to_session": "NOBODY/ghost", "subject": "s3", "body": "x"}, headers=a)
    assert r.status_code == 429, r.text
    err = r.json()["error"]
    assert (err["code"], err["bound"], err["limit"]) == ("message_quota", "messages_per_day", 3)
    assert 0 < int(r.headers["Retry-After"]) <= 86_400
    assert sorted(_history(api, a)) == ["s0", "s1", "s2"]  # the refused send left nothing behind
    r = api.post(MESSAGES, json={"to_session": None, "subject": "b", "body": "x"}, headers=a)
    assert r.status_code == 429, r.text  # a broadcast counts too
    assert api.post(MESSAGES, json={"to_session": A, "subject": "t", "body": "x"}, headers=b).status_code == 201
    assert api.post(MESSAGES, json={"to_session": A, "subject": "t", "body": "x"},
                    headers=api.admin).status_code == 201  # an admin is not counted
    api.hub.clock.advance(86_400)  # a new UTC day starts the count again
    r = api.post(MESSAGES, json={"to_session": "NOBODY/ghost", "subject": "s4", "body": "x"}, headers=a)
    assert r.status_code == 201, r.text
    day = int(api.hub.clock.now() // quota.DAY)
    used = api.hub.query_sync(lambda tx, now: tx.message_quota.used(A, day))
    assert used == {"messages": 1, "bytes": quota.size_of("s4", "x")}


def test_message_bytes_per_day_are_bounded_per_session(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quota, "MAX_MESSAGE_BYTES_PER_DAY", 100_000)
    a = api.token(A)
    r = api.post(MESSAGES, json={"to_session": "NOBODY/ghost", "subject": "big", "body": "é" * 40_000},
                 headers=a)  # 80,000 bytes of UTF-8
    assert r.status_code == 201, r.text
    r = api.post(MESSAGES, json={"to_session": "NOBODY/ghost", "subject": "more", "body": "n" * 20_000}, headers=a)
    assert r.status_code == 429 and r.json()["error"]["bound"] == "bytes_per_day", r.text
    r = api.post(MESSAGES, json={"to_session": "NOBODY/ghost", "subject": "less", "body": "n" * 10_000}, headers=a)
    assert r.status_code == 201, r.text
    assert sorted(_history(api, a)) == ["big", "less"]


def test_a_refused_send_in_a_batch_leaves_the_other_sends_of_the_batch(api: Api,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Sends of one group commit: the one past the bound fails alone, whichever round trip its judgement came
    back with (PostgreSQL reads it with the batch's next statements), and the others are stored."""
    monkeypatch.setattr(quota, "MAX_MESSAGES_PER_DAY", 2)
    me, other = Actor(A), Actor(B)

    async def burst() -> list[object]:
        def send(actor: Actor, n: int) -> object:
            return api.hub.mutate(actor, lambda tx, now: messages.send(
                tx, actor, to_session="NOBODY/ghost", subject=f"{actor.session_id[0]}{n}", body="x", now=now))
        return await asyncio.gather(*(send(actor, n) for n in range(3) for actor in (me, other)),
                                    return_exceptions=True)

    outcomes = api.portal.call(burst) if hasattr(api, "portal") else asyncio.run(burst())
    refused = [o for o in outcomes if isinstance(o, quota.MessageQuotaExceeded)]
    assert len(refused) == 2, outcomes  # the third of each session
    assert sorted(_history(api, api.admin)) == ["A0", "A1", "B0", "B1"]
