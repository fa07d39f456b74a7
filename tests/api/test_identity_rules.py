"""Identity rules at the hub (issue 7, points 3, 4, 5 and 10), on both backends.

Reserved names, the true end of a session id, one session under any
spelling, recipients the hub has never seen, and attribution fields that must
agree with the token.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Api

ME = "HOWARD-HOME/claude-main"


# ---- point 10: reserved identities ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["admin", "ADMIN", "coordhub", "CoordHub/System", "ALL", "all", "ALL_SESSIONS",
                                  "fleet", "Broadcast"])
def test_reserved_names_cannot_be_session_tokens(api: Api, name: str) -> None:
    r = api.post("/api/coord/tokens", json={"name": name}, headers=api.admin)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid" and "reserved" in r.json()["error"]["message"]
    listed = api.get("/api/coord/tokens", headers=api.admin).json()
    assert [t["name"] for t in listed] == ["admin"]  # only the bootstrap admin token


def test_admin_may_name_an_admin_token_but_not_the_hub(api: Api) -> None:
    assert api.post("/api/coord/tokens", json={"name": "admin", "admin": True}, headers=api.admin).status_code == 201
    r = api.post("/api/coord/tokens", json={"name": "coordhub", "admin": True}, headers=api.admin)
    assert r.status_code == 422 and "hub's own name" in r.json()["error"]["message"]


@pytest.mark.parametrize("word", ["fleet", "Broadcast", "all", "ALL_SESSIONS"])
def test_every_broadcast_word_broadcasts(api: Api, word: str) -> None:
    r = api.post("/api/coord/messages", json={"to_session": word, "subject": "hi"}, headers=api.token(ME))
    assert r.status_code == 201 and r.json()["broadcast"] is True


@pytest.mark.parametrize("name", ["HOWARD-HOME/claude-main\n", "bare\n", "a/b\r\n"])
def test_no_auth_session_with_a_trailing_newline_is_refused(open_api: TestClient, name: str) -> None:
    r = open_api.post("/api/coord/locks", json={"project_key": "p", "resource": "x", "session_id": name})
    assert r.status_code == 422, r.text
    r = open_api.post("/api/coord/messages", json={"subject": "s", "from_session": name})
    assert r.status_code == 422, r.text
    r = open_api.get("/api/coord/messages", params={"to_session": name})
    assert r.status_code == 422, r.text
    assert open_api.get("/api/coord/locks").json() == []


def test_no_auth_cannot_act_as_the_hub(open_api: TestClient) -> None:
    r = open_api.post("/api/coord/messages", json={"subject": "s", "from_session": "coordhub", "to_session": ME})
    assert r.status_code == 422 and "hub's own name" in r.json()["error"]["message"]
    assert open_api.get("/api/coord/messages", params={"to_session": ME}).json() == []


# ---- point 5: attribution fields come from the token ---------------------------------------------

def test_created_by_machine_is_the_tokens_machine(api: Api) -> None:
    me = api.token(ME)
    r = api.post("/api/coord/todos", json={"text": "t"}, headers=me)
    assert r.status_code == 201 and r.json()["created_by_machine"] == "HOWARD-HOME"
    r = api.post("/api/coord/todos", json={"text": "t", "created_by_machine": "howard-home"}, headers=me)
    assert r.status_code == 201 and r.json()["created_by_machine"] == "HOWARD-HOME"  # stored as the token says


@pytest.mark.parametrize(("session", "claimed"), [(ME, "DESKTOP-0O8A1RL"), (ME, "HOWARD-HOME/claude-main"),
                                                  ("backend", "HOWARD-HOME")])
def test_another_machine_is_403_and_writes_nothing(api: Api, session: str, claimed: str) -> None:
    headers = api.token(session)
    before = api.hub.query_sync(lambda tx, now: tx.events.last_id())
    r = api.post("/api/coord/todos", json={"text": "t", "created_by_machine": claimed}, headers=headers)
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "forbidden" and "attribution comes from the token" in error["message"]
    assert api.hub.query_sync(lambda tx, now: tx.events.last_id()) == before
    assert api.get("/api/coord/todos", headers=api.admin).json() == []


def test_no_auth_machine_must_agree_with_the_named_session(open_api: TestClient) -> None:
    r = open_api.post("/api/coord/todos", json={"text": "t", "created_by": ME, "created_by_machine": "LAPTOP"})
    assert r.status_code == 403
    r = open_api.post("/api/coord/todos", json={"text": "t", "created_by": ME, "created_by_machine": "HOWARD-HOME"})
    assert r.status_code == 201 and r.json()["created_by_machine"] == "HOWARD-HOME"
