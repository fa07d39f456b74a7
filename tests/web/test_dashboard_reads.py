"""The reads the dashboard's views repeat on every event stay off the event loop when their cost grows with the data.

On SQLite a plain read runs on the event loop (cheaper than a thread hop for a few indexed rows); a read whose
cost grows with what the fleet stored must run on a reader thread (``Hub.query_off_loop``), or every request the
hub serves waits for it. The Fleet view reads ``/conversations/addresses`` on every presence, session and token
event, and the Conversations view on every conversation event; its pending counts walk every accepted turn ever
addressed to a declared address (turns are never pruned): about 80 ms on the loop at 200,000 turns, which one
ordinary token sends in ten days (its quota is 20,000 a day), and which its own ``presence/register`` calls then
repeat in every open Fleet view. ``/presence`` answers every session that ever registered (an orchestrator worker is
a session of its own): about 90 ms on the loop at 10,000 sessions, on the same events (found by a review). The
admin's token list, with revoked tokens, is every token ever minted (each orchestrator worker's attempt mints one).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from coordhub.core import addressing, conversations, presence
from tests.conftest import Api, on_event_loop
from tests.web.test_web_sessions import bearer_value, sign_in

AGENT = "m1/agent"


def _spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, seen: dict[str, bool]) -> None:
    real: Callable[..., Any] = getattr(module, name)

    def spying(*args: Any, **kwargs: Any) -> Any:
        seen[name] = on_event_loop()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spying)


def test_the_conversation_reads_of_the_fleet_and_conversations_views_run_off_the_event_loop(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    writes = sign_in(api.client, bearer_value(api.token(AGENT)))  # as the page reads: cookie and secret
    r = api.put("/api/coord/conversations/profile", json={"machine": "m1", "project": "web"}, headers=writes)
    assert r.status_code == 200, r.text
    r = api.post("/api/coord/conversations/turns", headers=writes, json={
        "to": "m1.web", "conversation_id": "c1", "type": "request", "title": "t", "body": "b"})
    assert r.status_code == 201, r.text
    seen: dict[str, bool] = {}
    _spy(monkeypatch, addressing, "addresses", seen)
    _spy(monkeypatch, conversations, "listing", seen)
    _spy(monkeypatch, conversations, "show", seen)
    for path in ("/api/coord/conversations/addresses", "/api/coord/conversations?limit=200&state=open",
                 "/api/coord/conversations/c1?after=0"):
        r = api.get(path, headers=writes)
        assert r.status_code == 200, (path, r.text)
    assert r.json()["pending"] == 1
    assert seen == {"addresses": False, "listing": False, "show": False}, seen


def test_the_fleet_views_session_list_is_read_off_the_event_loop(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    writes = sign_in(api.client, bearer_value(api.token(AGENT)))
    r = api.post("/api/coord/presence/register", json={"client": "claude-code"}, headers=writes)
    assert r.status_code == 200, r.text
    seen: dict[str, bool] = {}
    _spy(monkeypatch, presence, "page", seen)
    r = api.get("/api/coord/presence", headers=writes)
    assert r.status_code == 200 and [s["session_id"] for s in r.json()] == [AGENT], r.text
    assert seen == {"page": False}, seen


def test_the_token_list_is_read_off_the_event_loop(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # every token ever minted (each orchestrator worker's attempt mints one), with ?include_revoked=true
    from coordhub.core import tokens

    seen: dict[str, bool] = {}
    _spy(monkeypatch, tokens, "find", seen)
    r = api.get("/api/coord/tokens", params={"include_revoked": "true"}, headers=api.admin)
    assert r.status_code == 200, r.text
    assert seen == {"find": False}


def test_the_conversations_views_list_reads_its_page_at_once_not_per_conversation(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # the list read two more queries per conversation (participants, pending): 400 for the view's page of 200,
    # again on every conversation event in every open Conversations view
    from coordhub.store.tables import conversations as table
    from coordhub.store.tables.conversations import Conversations

    monkeypatch.setattr(table, "_IDS_PER_READ", 2)  # three conversations: two reads of each kind, merged

    a, b = api.token("m1/agent"), api.token("m2/agent")
    for headers, machine, project in ((a, "m1", "web"), (b, "m2", "api")):
        r = api.put("/api/coord/conversations/profile", json={"machine": machine, "project": project}, headers=headers)
        assert r.status_code == 200, r.text

    def turn(headers: dict[str, str], to: str, cid: str, kind: str, **extra: Any) -> None:
        r = api.post("/api/coord/conversations/turns", headers=headers, json={
            "to": to, "conversation_id": cid, "type": kind, "title": cid, "body": f"{kind} {next(sent)}", **extra})
        assert r.status_code == 201, r.text

    sent = itertools.count()  # each body its own: the same text again is a duplicate
    turn(a, "m2.api", "c1", "request")
    turn(b, "m1.web", "c1", "progress")
    turn(a, "m2.api", "c2", "request")
    turn(a, "m2.api", "c2", "release", release_status="complete")
    turn(a, "m2.api", "c2", "request")  # pending again after its release
    turn(a, "m1.web", "c3", "request")  # to itself: one participant
    calls: dict[str, int] = {}
    for name in ("participants", "pending_in"):
        real: Callable[..., Any] = getattr(Conversations, name)

        def counting(self: Conversations, *args: Any, _real: Callable[..., Any] = real, _name: str = name) -> Any:
            calls[_name] = calls.get(_name, 0) + 1
            return _real(self, *args)
        monkeypatch.setattr(Conversations, name, counting)
    for headers in (api.admin, a):
        r = api.get("/api/coord/conversations", params={"limit": 200}, headers=headers)
        assert r.status_code == 200, r.text
        got = {c["conversation_id"]: (c["participants"], c["pending"]) for c in r.json()}
        assert got == {"c1": (["m1.web", "m2.api"], 2), "c2": (["m1.web", "m2.api"], 1), "c3": (["m1.web"], 1)}, got
    assert calls == {}, calls
