"""A token beside an ``X-Coord-Session`` naming another session is refused (403 ``session_mismatch``).

Before, the header was ignored next to a token: a stale ``COORD_TOKEN`` beside
an identity naming another session acted as the token's session without a
word. One rule (:func:`coordhub.api.auth.check_named_session`) for every path
that authenticates: the hot routes, FastAPI's, long-polls and ``/mcp``. Real
``coord serve`` processes over HTTP, and real ``coord`` runs for the client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import LiveHub
from tests.coordcli import Coord, git_init, isolated_env

A = "DESKTOP-0O8A1RL/claude-main"
B = "HOWARD-HOME/claude-main"

# (method, path, body, params): hot routes (served past FastAPI's resolver), then FastAPI's own, a long-poll
REQUESTS: list[tuple[str, str, dict[str, Any] | None, dict[str, str] | None]] = [
    ("POST", "/api/coord/messages", {"to_session": "ALL", "subject": "who sent this?"}, None),
    ("POST", "/api/coord/locks", {"project_key": "p", "resource": "src/a.py", "description": "mine?"}, None),
    ("GET", "/api/coord/messages", None, None),
    ("POST", "/api/coord/todos", {"text": "whose todo?"}, None),
    ("GET", "/api/coord/whoami", None, None),
    ("GET", "/api/coord/messages/wait", None, {"timeout": "1"}),
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    h = LiveHub(tmp_path_factory.mktemp("hub") / "data").start()
    try:
        yield h
    finally:
        h.stop()


def _bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def _last_event(hub: LiveHub) -> int:
    events = httpx2.get(hub.url + "/api/coord/audit", headers=_bearer(hub.admin_token), timeout=10).json()
    return max((e["id"] for e in events), default=0)


@pytest.mark.parametrize(("method", "path", "body", "params"), REQUESTS, ids=[f"{m} {p}" for m, p, _, _ in REQUESTS])
def test_a_header_naming_another_session_is_refused_and_changes_nothing(
        hub: LiveHub, method: str, path: str, body: dict[str, Any] | None, params: dict[str, str] | None) -> None:
    token = hub.token(B)
    before = _last_event(hub)
    r = httpx2.request(method, hub.url + path, json=body, params=params, headers=_bearer(token, **{
        "X-Coord-Session": A}), timeout=10)
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "session_mismatch" and error["session"] == A and error["acting_as"] == B, error
    assert A in error["message"] and B in error["message"] and "COORD_SESSION" in error["message"], error
    assert _last_event(hub) == before  # nothing was written, as anyone


@pytest.mark.parametrize(("method", "path", "body", "params"), REQUESTS, ids=[f"{m} {p}" for m, p, _, _ in REQUESTS])
def test_a_header_naming_the_tokens_own_session_in_any_case_is_accepted(
        hub: LiveHub, method: str, path: str, body: dict[str, Any] | None, params: dict[str, str] | None) -> None:
    token = hub.token(A)
    for spelling in (A, A.lower(), A.upper()):
        r = httpx2.request(method, hub.url + path, json=body, params=params,
                           headers=_bearer(token, **{"X-Coord-Session": spelling}), timeout=10)
        assert r.status_code in (200, 201), (spelling, r.text)
        if method == "POST" and path != "/api/coord/locks":
            answer = r.json()
            assert A in (answer.get("from_session"), answer.get("created_by")), answer
        if path == "/api/coord/locks":  # released, so the next spelling's claim is no conflict
            httpx2.delete(hub.url + f"/api/coord/locks/{r.json()['id']}", headers=_bearer(token), timeout=10)


def test_mcp_applies_the_same_rule(hub: LiveHub) -> None:
    token = hub.token(B)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    r = httpx2.post(hub.url + "/mcp", json=call, headers={**headers, **_bearer(token, **{"X-Coord-Session": A})},
                    timeout=30)
    assert r.status_code == 403 and r.json()["error"]["code"] == "session_mismatch", r.text


# ---- the client: a named session goes beside the token, and a mismatch is a clear error -----------------------

@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[LiveHub, Coord]]:
    env = isolated_env(tmp_path)
    h = LiveHub(Path(env["XDG_DATA_HOME"]) / "coordhub").start()
    try:
        yield h, Coord(tmp_path, env, url=h.url)
    finally:
        h.stop()


@pytest.mark.parametrize("args", [("msg", "send", "ALL", "who sent this?", "x"), ("lock", "claim", "p", "a.py", "w"),
                                  ("msg", "inbox")])
def test_a_stale_token_beside_another_named_session_is_exit_6_naming_both(local: tuple[LiveHub, Coord],
                                                                          args: tuple[str, ...]) -> None:
    hub, coord = local
    stale = coord.with_(env={**coord.env, "COORD_TOKEN": hub.token(B), "COORD_SESSION": A})
    before = _last_event(hub)
    r = stale.fails(6, *args)
    assert "session_mismatch" in r.err and A in r.err and B in r.err, r
    assert _last_event(hub) == before  # not done as B either (nor queued: a refusal is no outage)
    r = stale.with_(globals_=("--session", A))(*args, "--json")  # the flag too, and --json's envelope
    assert r.code == 6 and r.json()["error"]["code"] == "session_mismatch", r


def test_an_identity_file_naming_another_session_beside_a_token_is_refused(local: tuple[LiveHub, Coord]) -> None:
    hub, coord = local
    work = git_init(coord.cwd / "work")
    (work / ".claude").mkdir()
    (work / ".claude" / "identity.json").write_text(json.dumps({"session": A}))
    in_work = coord.with_(cwd=work, env={**coord.env, "COORD_TOKEN": hub.token(B)})
    r = in_work.fails(6, "msg", "send", "ALL", "who sent this?", "x")
    assert "session_mismatch" in r.err, r


def test_the_named_session_of_the_token_works_and_a_derived_name_is_not_sent(local: tuple[LiveHub, Coord]) -> None:
    hub, coord = local
    token = hub.token(B)
    same = coord.with_(env={**coord.env, "COORD_TOKEN": token, "COORD_SESSION": B.lower()})
    assert same.json("msg", "send", "ALL", "mine", "x")["from_session"] == B
    assert same.with_(globals_=("--session", B)).ok("msg", "inbox").err == ""  # no warning: it was checked
    # identity.json's machine only derives a name (<machine>/claude-main): a guess, not sent beside a token
    work = git_init(coord.cwd / "work")
    (work / ".claude").mkdir()
    (work / ".claude" / "identity.json").write_text(json.dumps({"machine": "ELSEWHERE"}))
    derived = coord.with_(cwd=work, env={**coord.env, "COORD_TOKEN": token})
    assert derived.json("msg", "send", "ALL", "still mine", "x")["from_session"] == B


def test_coord_agent_beside_the_users_own_identity_session_uses_its_machine_token(
        local: tuple[LiveHub, Coord]) -> None:
    # The documented start (docs/orchestrator.md): COORD_TOKEN=<laptop/agent's token> coord agent --machine laptop,
    # run by a user whose ~/.claude/identity.json (or COORD_SESSION) names their own Claude session. That name is
    # the user's interactive identity, not a claim about the machine's token: the agent must not send it beside
    # the token (it was refused 403 session_mismatch, exit 6, and no host ever started).
    hub, coord = local
    (Path(coord.env["HOME"]) / ".claude").mkdir(exist_ok=True)
    (Path(coord.env["HOME"]) / ".claude" / "identity.json").write_text(json.dumps({"session": A}))
    for extra in ({}, {"COORD_SESSION": B}):
        env = {**coord.env, "COORD_TOKEN": hub.token("laptop/agent"), **extra}
        r = coord.with_(env=env).fails(1, "agent", "--machine", "laptop", "--state-dir", str(coord.cwd / "state"))
        # it reached the hub as laptop/agent: the hub answered that no coordinator.yml is applied
        assert "session_mismatch" not in r.err and "coordinator.yml" in r.err, r


def test_an_admin_command_with_the_hubs_admin_token_beside_the_users_identity_session_works(
        local: tuple[LiveHub, Coord]) -> None:
    # docs/cli.md: an admin command takes an admin token from --token / COORD_TOKEN (a remote hub's admin.token,
    # or a hub whose data dir is elsewhere). The user's identity.json naming their own session is no claim about
    # that token (it acts as 'admin'): the command ran before 5b0658b and was then refused, exit 6.
    hub, coord = local
    (Path(coord.env["HOME"]) / ".claude").mkdir(exist_ok=True)
    (Path(coord.env["HOME"]) / ".claude" / "identity.json").write_text(json.dumps({"session": A}))
    admin = coord.with_(env={**coord.env, "COORD_TOKEN": hub.admin_token})
    created = admin.ok("token", "create", "laptop/agent")
    assert "coord_" in created.out, created
    assert "laptop/agent" in admin.ok("token", "list").out
    # a session command acts as the admin too (the client knows the hub's admin.token and sends no name beside
    # it), and says so on stderr: the name is not A's, whose leases and messages stay A's
    inbox = admin.ok("msg", "inbox")
    assert f"this acts as the admin, not as {A}" in inbox.err, inbox
