"""``coord halt --machine/--project``, ``coord resume --engage-all`` and ``coord engage``: real CLI, real hub.

Sessions ``DESKTOP-0O8A1RL/claude-main`` (A), ``desktop-0o8a1rl/worker`` (A2,
the same machine in another case) and ``HOWARD-HOME/claude-main`` (B), plus
the hub's admin. Every CLI command heartbeats its session, so a session that
ran a command shortly before a halt counts as active under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from coordhub.cli.views import shown_time
from tests.conftest import LiveHub
from tests.coordcli import Coord, git_init, isolated_env

A = "DESKTOP-0O8A1RL/claude-main"
A2 = "desktop-0o8a1rl/worker"
B = "HOWARD-HOME/claude-main"


@dataclass(frozen=True)
class Fleet:
    admin: Coord
    a: Coord
    a2: Coord
    b: Coord


@pytest.fixture
def fleet(live_hub: LiveHub, tmp_path: Path) -> Fleet:
    base = Coord(git_init(tmp_path / "work"), isolated_env(tmp_path), url=live_hub.url)
    return Fleet(base.as_token(live_hub.admin_token), base.as_token(live_hub.token(A)),
                 base.as_token(live_hub.token(A2)), base.as_token(live_hub.token(B)))


def test_a_session_may_halt_no_other_scope(fleet: Fleet) -> None:
    assert "machine:desktop-0o8a1rl" in fleet.a.fails(6, "halt", "no", "--machine", "HOWARD-HOME").err
    fleet.a.fails(6, "halt", "no", "--project", "career")
    fleet.a.fails(6, "halt", "no")
    fleet.a.fails(6, "resume")
    fleet.a.fails(2, "halt", "no", "--machine", "x", "--project", "y")
    fleet.admin.fails(1, "halt", "no", "--machine", "not a name")
    fleet.admin.fails(2, "halt", "no", "--project", "...")
    assert fleet.b.json("status")["halts"] == []


def test_a_project_is_written_as_the_client_declares_it(fleet: Fleet) -> None:
    fleet.b.ok("conv", "profile", "--project", "coord.hub")  # the client declares coord-hub
    assert fleet.admin.json("halt", "stop it", "--project", "Coord.Hub")["scope"] == "project:coord-hub"
    assert "project coord-hub is halted" in fleet.b.fails(5, "todo", "add", "x").err
    assert fleet.admin.json("resume", "--project", "coord.hub", "--engage-all")["was"]["scope"] == "project:coord-hub"
    # a directory api_: the client declares api (review r7), and --project api_ halts that project
    fleet.b.ok("conv", "profile", "--project", "api_")
    assert fleet.admin.json("halt", "stop it", "--project", "api_")["scope"] == "project:api"
    assert "project api is halted" in fleet.b.fails(5, "todo", "add", "x").err
    assert fleet.admin.json("resume", "--project", "api_", "--engage-all")["was"]["scope"] == "project:api"
    assert fleet.b.json("status")["halts"] == []


def test_a_session_halts_its_own_machine_and_only_that(fleet: Fleet) -> None:
    for coord in (fleet.a2, fleet.b):
        coord.ok("status")  # each runs a command before the halt: active under it
    r = fleet.a.ok("halt", "poll loop runs away", "--machine", "DESKTOP-0O8A1RL")
    assert r.out == f"machine desktop-0o8a1rl halted by {A}: poll loop runs away\n"

    r = fleet.a2.fails(5, "todo", "add", "x")
    assert "machine desktop-0o8a1rl is halted by" in r.err and "poll loop runs away" in r.err
    assert "coord resume --machine desktop-0o8a1rl" in r.err
    status = fleet.b.ok("status").out
    assert f"HALTED (machine:desktop-0o8a1rl) by {A}" in status and "covers you" not in status
    assert "covers you" in fleet.a2.ok("status").out
    halts = fleet.b.json("status")["halts"]
    assert [(h["scope"], h["applies"]) for h in halts] == [("machine:desktop-0o8a1rl", False)]

    fleet.b.fails(6, "resume", "--machine", "desktop-0o8a1rl")
    fleet.a2.fails(5, "halt", "again", "--machine", "desktop-0o8a1rl")  # a halted session halts nothing

    r = fleet.a.ok("resume", "--machine", "desktop-0o8a1rl")
    assert r.out.splitlines()[0] == "machine desktop-0o8a1rl resumed"
    assert A2 in r.out.splitlines()[1] and "coord engage" in r.out  # A2 is paused; A resumed, so it is not


def test_a_paused_session_exits_5_until_it_engages(fleet: Fleet) -> None:
    fleet.a.ok("status")
    fleet.admin.ok("halt", "bad deploy")
    fleet.a.fails(5, "todo", "add", "x")
    data = fleet.admin.json("resume")
    assert data["paused"] == [A] and data["was"]["reason"] == "bad deploy"

    r = fleet.a.fails(5, "todo", "add", "x")
    assert "is paused" in r.err and "coord engage" in r.err
    envelope = fleet.a("todo", "add", "x", "--json")
    assert envelope.code == 5 and envelope.json()["error"]["code"] == "paused"
    assert "PAUSED since" in fleet.a.ok("status").out and "coord engage" in fleet.a.ok("status").out
    assert fleet.a.json("status")["paused"]["scope"] == "fleet"
    assert {p["session_id"]: p["paused"] for p in fleet.a.json("presence")}[A] is True
    assert "paused" in fleet.a.ok("presence").out.splitlines()[0]

    assert fleet.a.ok("engage").out == f"{A} engaged: its writes go through again\n"
    fleet.a.ok("todo", "add", "x")
    assert fleet.a.json("engage")["was"] is None
    assert fleet.a.ok("engage").out == f"{A} was not paused\n"


def test_resume_engage_all_lets_every_session_go_on(fleet: Fleet) -> None:
    for coord in (fleet.a, fleet.a2, fleet.b):
        coord.ok("status")
    fleet.admin.ok("halt", "freeze")
    r = fleet.admin.ok("resume", "--engage-all")
    assert r.out == "fleet resumed\n"
    fleet.a.ok("todo", "add", "back to work")

    fleet.admin.ok("halt", "again")
    assert sorted(fleet.admin.json("resume")["paused"]) == sorted([A, A2, B])
    r = fleet.admin.ok("resume", "--machine", "DESKTOP-0O8A1RL", "--engage-all")
    assert r.out.splitlines() == ["machine desktop-0o8a1rl was not halted", f"engaged 2 session(s): {A}, {A2}"]
    fleet.a.ok("todo", "add", "x")
    fleet.b.fails(5, "todo", "add", "x")


def test_help_teaches_scopes_and_the_pause(tmp_path: Path) -> None:
    coord = Coord(tmp_path, isolated_env(tmp_path))
    text = coord.ok("halt", "--help").out
    assert "--machine" in text and "--project" in text and "own machine" in text and "--json" in text
    text = coord.ok("resume", "--help").out
    assert "--engage-all" in text and "coord engage" in text and "paused" in text
    text = coord.ok("engage", "--help").out
    assert "paused" in text and "--json" in text


def test_resume_lifts_a_project_halt_stored_under_another_spelling(fleet: Fleet, live_hub: LiveHub) -> None:
    """A halt the hub stored as ``project:api_`` (POST /halt takes it; an older CLI or hub wrote it, or the
    dashboard) covers the sessions of project api; ``coord resume --project api_``, the command its refusal
    names, lifts it: the CLI's spelling (api) is not the only one tried."""
    import httpx2

    fleet.b.ok("conv", "profile", "--project", "api_")  # the client declares api
    r = httpx2.post(live_hub.url + "/api/coord/halt", json={"reason": "stop it", "scope": "project:api_"},
                    headers={"Authorization": f"Bearer {live_hub.admin_token}"})
    assert r.status_code == 201 and r.json()["scope"] == "project:api_", r.text
    assert "halted" in fleet.b.fails(5, "todo", "add", "x").err
    assert fleet.admin.json("resume", "--project", "api_", "--engage-all")["was"]["scope"] == "project:api_"
    assert fleet.b.json("status")["halts"] == []
    fleet.b.ok("todo", "add", "x")
    # both spellings halted at once: one resume lifts both
    assert httpx2.post(live_hub.url + "/api/coord/halt", json={"reason": "again", "scope": "project:api_"},
                       headers={"Authorization": f"Bearer {live_hub.admin_token}"}).status_code == 201
    assert fleet.admin.json("halt", "and again", "--project", "api")["scope"] == "project:api"
    assert fleet.admin.json("resume", "--project", "api_", "--engage-all")["was"]["scope"] == "project:api"
    assert fleet.b.json("status")["halts"] == []


def test_halt_refresh_says_a_standing_halts_reason_anew(fleet: Fleet) -> None:
    """POST /halt takes ``refresh`` (cross-agent-halt uses it); `coord halt` had no way to ask for it."""
    first = fleet.a.json("halt", "poll loop runs away", "--machine", "DESKTOP-0O8A1RL")
    again = fleet.a.fails(5, "halt", "found the loop", "--machine", "DESKTOP-0O8A1RL")  # the halt covers A
    assert "poll loop runs away" in again.err and "--refresh" in again.err  # the refusal names the way
    r = fleet.a.ok("halt", "found the loop: cron", "--machine", "DESKTOP-0O8A1RL", "--refresh")
    assert r.out == (f"machine desktop-0o8a1rl was halted already (since {shown_time(first['halted_at'])}); "
                     f"its reason is now: found the loop: cron (by {A})\n"), r  # to the second: --json has more
    [standing] = fleet.b.json("status")["halts"]
    assert (standing["reason"], standing["halted_at"]) == ("found the loop: cron", first["halted_at"])
    data = fleet.a.json("halt", "still cron", "--machine", "DESKTOP-0O8A1RL", "--refresh")
    assert (data["refreshed"], data["reason"]) == (True, "still cron")
    # nothing standing: --refresh halts as usual; a scope the session may not lift stays refused
    fresh = fleet.b.json("halt", "disk full", "--machine", "HOWARD-HOME", "--refresh")
    assert fresh["reason"] == "disk full" and not fresh.get("refreshed")
    fleet.a.fails(6, "halt", "mine now", "--machine", "HOWARD-HOME", "--refresh")
    # an admin's halt of a scope an admin halted: 409, naming --refresh
    fleet.admin.ok("halt", "schema change", "--project", "career")
    taken = fleet.admin.fails(4, "halt", "schema change, part 2", "--project", "career")
    assert "already halted" in taken.err and "--refresh" in taken.err, taken
    assert fleet.admin.json("halt", "schema change, part 2", "--project", "career", "--refresh")["refreshed"]
    assert "--refresh" in fleet.a.ok("halt", "--help").out
