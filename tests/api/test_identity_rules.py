"""Identity rules at the hub (issue 7, points 3, 4, 5 and 10), on both backends.

Reserved names, the true end of a session id, one session under any
spelling, recipients the hub has never seen, and attribution fields that must
agree with the token.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from coordhub.core.hub import Hub
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


# ---- point 3: one session under any spelling -----------------------------------------------------

UPPER, LOWER = "DESKTOP-0O8A1RL/claude-main", "desktop-0o8a1rl/claude-main"


def test_a_message_to_any_spelling_reaches_the_session(api: Api) -> None:
    desktop, me = api.token(UPPER), api.token(ME)
    sent = api.post("/api/coord/messages", json={"to_session": LOWER, "subject": "hi"}, headers=me).json()
    assert sent["to_session"] == UPPER and sent["recipient_known"] is True  # the first spelling, for display
    inbox = api.get("/api/coord/messages", params={"unread_only": "true"}, headers=desktop).json()
    assert [m["id"] for m in inbox] == [sent["id"]]
    assert api.get("/api/coord/messages/unread-count", params={"session_id": LOWER},
                   headers=desktop).json() == {"session_id": UPPER, "unread": 1}


def test_a_token_for_another_spelling_is_the_same_session(api: Api) -> None:
    first, second = api.token(UPPER), api.token(LOWER)
    names = sorted(t["name"] for t in api.get("/api/coord/tokens", headers=api.admin).json())
    assert names == [UPPER, UPPER, "admin"]
    lease = api.post("/api/coord/locks", json={"project_key": "p", "resource": "src/", "session_id": LOWER},
                     headers=first)
    assert lease.status_code == 201 and lease.json()["session_id"] == UPPER  # naming yourself in any case is fine
    # the other token is the same holder: it may release the lease, and its own claims never conflict with it
    again = api.post("/api/coord/locks", json={"project_key": "p", "resource": "src/a.py"}, headers=second)
    assert again.status_code == 201, again.text
    listed = api.get("/api/coord/locks", params={"session_id": LOWER}, headers=api.admin).json()
    assert sorted(x["id"] for x in listed) == sorted([lease.json()["id"], again.json()["id"]])
    assert api.delete(f"/api/coord/locks/{lease.json()['id']}", headers=second).status_code == 200
    assert api.get("/api/coord/whoami", headers=second).json()["session_id"] == UPPER
    revoked = api.delete(f"/api/coord/tokens/{LOWER}", headers=api.admin).json()
    assert (revoked["name"], revoked["revoked"]) == (UPPER, 2)


def test_a_recipient_seen_first_keeps_its_spelling(api: Api) -> None:
    me = api.token(ME)
    sent = api.post("/api/coord/messages", json={"to_session": "LAPTOP-7/codex", "subject": "s"}, headers=me).json()
    later = api.token("laptop-7/CODEX")  # the session appears later, spelled otherwise
    assert api.get("/api/coord/whoami", headers=later).json()["session_id"] == "LAPTOP-7/codex"
    inbox = api.get("/api/coord/messages", params={"unread_only": "true"}, headers=later).json()
    assert [m["id"] for m in inbox] == [sent["id"]]


def test_no_auth_actors_and_readers_fold_case(open_api: TestClient) -> None:
    r = open_api.post("/api/coord/locks", json={"project_key": "p", "resource": "x", "session_id": UPPER})
    assert r.status_code == 201
    again = open_api.post("/api/coord/locks", json={"project_key": "p", "resource": "x", "session_id": LOWER})
    assert again.status_code == 201 and again.json()["session_id"] == UPPER  # its own lease: no conflict
    other = open_api.post("/api/coord/locks", json={"project_key": "p", "resource": "x", "session_id": ME})
    assert other.status_code == 409 and other.json()["error"]["holder"] == UPPER
    open_api.post("/api/coord/messages", json={"from_session": ME, "to_session": LOWER, "subject": "s"})
    for spelling in (UPPER, LOWER):
        assert len(open_api.get("/api/coord/messages", params={"to_session": spelling}).json()) == 1
    r = open_api.post("/api/coord/todos", json={"text": "t", "created_by": LOWER,
                                                "created_by_machine": "desktop-0o8a1rl"})
    assert r.status_code == 201
    assert (r.json()["created_by"], r.json()["created_by_machine"]) == (UPPER, "DESKTOP-0O8A1RL")


def test_one_row_per_session_under_a_unique_folded_key(api: Api) -> None:
    def spellings(tx: Any, now: float) -> list[str]:
        return [tx.sessions.touch(s, now) for s in (UPPER, LOWER, "Desktop-0o8a1rl/Claude-Main")]

    assert api.hub.mutate_sync(_system(), spellings).body == [UPPER] * 3
    rows = api.hub.query_sync(lambda tx, now: tx.ex.all(
        "SELECT session_id, session_key FROM sessions WHERE session_key = ?", (LOWER,)))
    assert rows == [{"session_id": UPPER, "session_key": LOWER}]

    def duplicate(tx: Any, now: float) -> None:
        tx.ex.execute("INSERT INTO sessions (session_id, session_key, first_seen, last_seen) VALUES (?, ?, 0, 0)",
                      (LOWER, LOWER))

    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        api.hub.store.write_sync(duplicate)


def _system() -> Any:
    from coordhub.server import SYSTEM

    return SYSTEM


def test_no_auth_read_without_a_session_marks_it_for_its_recipient(open_api: TestClient) -> None:
    direct = open_api.post("/api/coord/messages", json={"from_session": ME, "to_session": UPPER,
                                                        "subject": "s"}).json()
    r = open_api.put(f"/api/coord/messages/{direct['id']}/read")  # seed 001's own call: no session named
    assert r.status_code == 200, r.text
    assert r.json()["read"] is True and r.json()["to_session"] == UPPER
    assert open_api.get("/api/coord/messages", params={"to_session": UPPER, "unread_only": "true"}).json() == []
    assert open_api.post(f"/api/coord/messages/{direct['id']}/ack").json()["acked_at"] is not None

    broadcast = open_api.post("/api/coord/messages", json={"from_session": ME, "subject": "all"}).json()
    r = open_api.put(f"/api/coord/messages/{broadcast['id']}/read")
    assert r.status_code == 422 and "broadcast" in r.json()["error"]["message"]
    assert "session_id" in r.json()["error"]["message"]
    assert open_api.put(f"/api/coord/messages/{broadcast['id']}/read",
                        params={"session_id": LOWER}).json()["read"] is True
    assert open_api.put(f"/api/coord/messages/{uuid.uuid4()}/read").status_code == 404


# ---- point 4: unknown recipients are visible -----------------------------------------------------

def test_a_send_says_whether_the_hub_knows_the_recipient(api: Api) -> None:
    me = api.token(ME)
    api.token("LAPTOP/claude-main")
    known = api.post("/api/coord/messages", json={"to_session": "laptop/claude-main", "subject": "s"}, headers=me)
    assert known.json()["recipient_known"] is True and "did_you_mean" not in known.json()
    typo = api.post("/api/coord/messages", json={"to_session": "LAPTPO/claude-main", "subject": "s"}, headers=me)
    assert typo.status_code == 201
    assert typo.json()["recipient_known"] is False and typo.json()["did_you_mean"][0] == "LAPTOP/claude-main"
    broadcast = api.post("/api/coord/messages", json={"subject": "s"}, headers=me).json()
    assert broadcast["recipient_known"] is None
    # seed 002 instance names follow the same rule; a session that appears later is known from then on
    bare = api.post("/api/coord/messages", json={"to_session": "backend", "subject": "s"}, headers=me).json()
    assert bare["recipient_known"] is False
    backend = api.token("backend")
    assert len(api.get("/api/coord/messages", params={"unread_only": "true"}, headers=backend).json()) == 2
    again = api.post("/api/coord/messages", json={"to_session": "Backend", "subject": "s"}, headers=me).json()
    assert again["recipient_known"] is True and again["to_session"] == "backend"


def test_acting_makes_a_no_auth_session_known(open_api: TestClient) -> None:
    first = open_api.post("/api/coord/messages", json={"from_session": ME, "to_session": "frontend", "subject": "s"})
    assert first.json()["recipient_known"] is False
    open_api.post("/api/coord/presence/register", json={"session_id": "FRONTEND"})
    again = open_api.post("/api/coord/messages", json={"from_session": ME, "to_session": "frontend", "subject": "s"})
    assert again.json()["recipient_known"] is True


def test_a_machine_name_reaches_the_bare_session_the_hub_knows_instead(api: Api, hub: Hub) -> None:
    """``to_machine`` (``coord msg send backend``): seed 000 reads a bare name as the machine's session,
    ``backend/claude-main``; when the hub has never seen that one but knows a session named ``backend`` (seed
    002's instances), the message goes there, and nothing is stored for ``backend/claude-main``."""
    me, backend = api.token(ME), api.token("Backend")

    def send(**to: str) -> Any:
        return api.post("/api/coord/messages", json={"subject": "s", **to}, headers=me)

    sent = send(to_machine="backend").json()
    assert (sent["to_session"], sent["recipient_known"]) == ("Backend", True)
    assert hub.query_sync(lambda tx, now: tx.sessions.by_key("backend/claude-main")) is None
    unread = api.get("/api/coord/messages", params={"unread_only": "true"}, headers=backend).json()
    assert [m["id"] for m in unread] == [sent["id"]]
    ghost = send(to_machine="ghost").json()  # neither known: seed 000's rule, and the send says it is unknown
    assert (ghost["to_session"], ghost["recipient_known"]) == ("ghost/claude-main", False)
    assert send(to_machine="howard-home").json()["to_session"] == ME  # the machine's session known: seed 000's rule
    api.token("backend/claude-main")  # both known: seed 000's rule
    both = send(to_machine="BACKEND").json()
    assert (both["to_session"], both["recipient_known"]) == ("backend/claude-main", True)
    for bad, why in (({"to_machine": "a/b"}, "without '/'"), ({"to_machine": "all"}, "broadcast"),
                     ({"to_machine": "backend", "to_session": "backend"}, "not both")):
        refused = send(**bad)
        assert refused.status_code == 422 and why in refused.json()["error"]["message"], refused.text
