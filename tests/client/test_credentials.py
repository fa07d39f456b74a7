"""Which credential the CLI sends (issue 7 points 1 and 2), with real ``coord`` subprocesses and real hubs.

The hub under test runs with the *default* data dir of the CLI's private
environment (``$XDG_DATA_HOME/coordhub``), exactly where the CLI used to pick
up ``admin.token`` by itself: every command then silently acted as the admin.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.client.conftest import Listener
from tests.conftest import LiveHub
from tests.coordcli import Coord, git_init, isolated_env

A = "DESKTOP-0O8A1RL/claude-main"
B = "HOWARD-HOME/claude-main"


@pytest.fixture
def local_hub(tmp_path: Path) -> Iterator[tuple[LiveHub, Coord]]:
    """A hub whose data dir is the CLI's default one, and a CLI with no credential of its own."""
    env = isolated_env(tmp_path)
    hub = LiveHub(Path(env["XDG_DATA_HOME"]) / "coordhub").start()
    try:
        yield hub, Coord(tmp_path, env, url=hub.url)
    finally:
        hub.stop()


# ---- point 1: no silent admin --------------------------------------------------------------------

def test_a_session_command_without_a_token_is_refused_not_run_as_admin(local_hub: tuple[LiveHub, Coord]) -> None:
    hub, anon = local_hub
    for args in (("msg", "send", "ALL", "who am I", "x"), ("lock", "claim", "p", "src/a.py", "mine?"),
                 ("msg", "inbox"), ("status",)):
        r = anon.fails(6, *args)
        assert "coord token create" in r.err and "COORD_TOKEN" in r.err and "identity.json" in r.err, r
    admin = {"Authorization": f"Bearer {hub.admin_token}"}
    assert httpx2.get(hub.url + "/api/coord/locks", headers=admin).json() == []
    assert httpx2.get(hub.url + "/api/coord/messages", params={"to_session": B}, headers=admin).json() == []


def test_admin_commands_and_explicit_admin_use_the_local_admin_token(local_hub: tuple[LiveHub, Coord]) -> None:
    hub, anon = local_hub
    token = anon.ok("token", "create", A).out.strip()
    assert [t["name"] for t in anon.json("token", "list")] == ["admin", A]
    anon.ok("halt", "stop everything")
    anon.ok("resume")
    m = anon.with_(globals_=("--admin",)).json("msg", "send", "ALL", "from the admin", "x")
    assert m["from_session"] == "admin"
    # a session token of its own wins over the local admin token, even for an admin command
    r = anon.as_token(token).fails(6, "token", "list")
    assert "--admin" in r.err, r
    assert anon.as_token(token).fails(2, "--admin", "status")  # --admin and --token together: usage error


def test_a_named_session_without_its_token_is_refused_on_an_auth_hub(local_hub: tuple[LiveHub, Coord]) -> None:
    _, anon = local_hub
    r = anon.with_(globals_=("--session", A)).fails(6, "msg", "send", "ALL", "as A?", "x")
    assert A in r.err and "needs a token" in r.err, r
    env_named = anon.with_(env={**anon.env, "COORD_SESSION": A})
    env_named.fails(6, "lock", "claim", "p", "x.py", "as A?")


def test_a_named_session_next_to_another_sessions_token_is_refused(local_hub: tuple[LiveHub, Coord]) -> None:
    hub, anon = local_hub
    as_b = anon.as_token(hub.token(B))
    r = as_b.with_(globals_=("--session", A)).fails(6, "msg", "send", "ALL", "B posing as A", "x")
    assert "session_mismatch" in r.err and A in r.err and B in r.err, r  # not done as B behind the user's back
    assert as_b.with_(globals_=("--session", B)).json("msg", "send", "ALL", "B as B", "x")["from_session"] == B


def test_no_auth_hub_takes_the_named_session_as_identity(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    hub = LiveHub(Path(env["XDG_DATA_HOME"]) / "coordhub", args=("--no-auth",)).start()
    try:
        coord = Coord(tmp_path, env, url=hub.url, globals_=("--session", A))
        assert coord.json("msg", "send", "ALL", "seed 001 style", "x")["from_session"] == A
        assert coord.json("lock", "claim", "p", "src/a.py", "mine")["session_id"] == A
    finally:
        hub.stop()


# ---- point 2: the admin token goes only to its own hub -----------------------------------------

def test_health_says_auth_and_the_hub_id_written_beside_the_admin_token(local_hub: tuple[LiveHub, Coord]) -> None:
    hub, _ = local_hub
    health = httpx2.get(hub.url + "/health").json()
    assert health["auth"] is True
    assert health["hub_id"] and health["hub_id"] == (hub.data_dir / "hub.id").read_text().strip()
    assert (hub.data_dir / "hub.id").stat().st_mode & 0o777 == 0o600
    hub.stop()
    hub.start()
    assert httpx2.get(hub.url + "/health").json()["hub_id"] == health["hub_id"]  # generated once


def test_the_local_admin_token_is_never_sent_to_another_listener(local_hub: tuple[LiveHub, Coord],
                                                                attacker: Listener) -> None:
    hub, anon = local_hub
    to_attacker = anon.with_(url=attacker.url)
    lease = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    for args in (("token", "list"), ("halt", "x"), ("lock", "release", "--force", lease)):
        r = to_attacker.fails(6, *args)
        assert "hub.id" not in r.err and "belongs to hub" in r.err, r
    to_attacker.with_(globals_=("--admin",)).fails(6, "msg", "inbox")
    attacker.health["hub_id"] = None  # a listener that does not say which hub it is gets nothing either
    to_attacker.fails(6, "token", "list")
    assert attacker.received(hub.admin_token) == [] and attacker.credentialed() == []
    assert {r["path"] for r in attacker.seen} == {"/health"}


def test_the_admin_token_never_follows_a_project_identity_json(local_hub: tuple[LiveHub, Coord],
                                                             attacker: Listener, tmp_path: Path) -> None:
    """An unpacked archive's untracked identity.json names a listener that repeats the real hub's public id."""
    hub, anon = local_hub
    attacker.health["hub_id"] = httpx2.get(hub.url + "/health").json()["hub_id"]  # /health needs no token
    repo = git_init(tmp_path / "unpacked")
    (repo / ".claude").mkdir()
    (repo / ".claude" / "identity.json").write_text(json.dumps({"coord_api": attacker.url, "machine": "X"}))
    in_repo = anon.with_(cwd=repo, url=None)
    lease = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    for args in (("halt", "incident"), ("resume",), ("token", "list"), ("token", "create", A),
                 ("lock", "release", "--force", lease), ("--admin", "msg", "inbox"), ("--admin", "status")):
        r = in_repo.fails(6, *args)
        assert "admin token" in r.err and "identity.json" in r.err and "--url or COORD_URL" in r.err, r
    assert attacker.received(hub.admin_token) == [] and attacker.seen == []
    assert httpx2.get(hub.url + "/api/coord/halt", headers={"Authorization": f"Bearer {hub.admin_token}"}
                      ).json()["halted"] is False
    # the operator names the hub: the admin command goes there, the listener still gets nothing
    in_repo.with_(url=hub.url).ok("halt", "incident")
    in_repo.with_(env={**in_repo.env, "COORD_URL": hub.url}).ok("resume")
    assert attacker.seen == []


def test_a_project_identity_json_naming_the_hub_needs_admin_trust_once(local_hub: tuple[LiveHub, Coord],
                                                                      tmp_path: Path) -> None:
    hub, anon = local_hub
    repo = git_init(tmp_path / "own")
    (repo / ".claude").mkdir()
    (repo / ".claude" / "identity.json").write_text(json.dumps({"coord_api": hub.url, "machine": "X"}))
    in_repo = anon.with_(cwd=repo, url=None)
    r = in_repo.fails(6, "token", "list")
    assert f"coord --admin trust {hub.url}" in r.err, r
    r = in_repo.ok("trust", hub.url)  # without --admin: sessions without a token may ask it, the admin token not
    assert "session X/claude-main (named by" in r.out and "without a token may now ask" in r.out, r
    in_repo.fails(6, "token", "list")
    in_repo.ok("--admin", "trust", hub.url)
    assert [t["name"] for t in in_repo.json("token", "list")] == ["admin"]


def test_a_hub_started_with_another_data_dir_is_found_through_coord_data_dir(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    hub = LiveHub(tmp_path / "elsewhere").start()
    try:
        coord = Coord(tmp_path, env, url=hub.url)
        r = coord.fails(6, "token", "list")
        assert "COORD_DATA_DIR" in r.err and str(Path(env["XDG_DATA_HOME"]) / "coordhub") in r.err, r
        found = coord.with_(env={**env, "COORD_DATA_DIR": str(hub.data_dir)})
        assert [t["name"] for t in found.json("token", "list")] == ["admin"]
    finally:
        hub.stop()


def test_a_token_that_is_no_header_value_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    """A token goes in the Authorization header, which is ASCII: a mistyped COORD_TOKEN with an accented letter,
    or such a "token" in identity.json, ended every command in a UnicodeEncodeError traceback."""
    work = git_init(tmp_path / "work")
    env = {**isolated_env(tmp_path / "env"), "COORD_URL": "http://127.0.0.1:9"}
    r = Coord(work, {**env, "COORD_TOKEN": "coord_t\u00f6ken"}).fails(2, "status")
    assert "COORD_TOKEN" in r.err and "not a token" in r.err, r
    (work / ".claude").mkdir()
    (work / ".claude" / "identity.json").write_text(json.dumps({"token": "coord_\u4e2d"}))
    r = Coord(work, env).fails(2, "status")
    assert "identity.json" in r.err and "not a token" in r.err, r


def test_a_session_that_is_no_header_value_is_refused_on_a_no_auth_hub_not_a_traceback(tmp_path: Path) -> None:
    """On a --no-auth hub the session goes in the X-Coord-Session header: a machine named 'Büro' in identity.json
    (session Büro/claude-main) ended every command in a UnicodeEncodeError traceback."""
    hub = LiveHub(tmp_path / "hub", args=("--no-auth",)).start()
    try:
        work = git_init(tmp_path / "work")
        env = {**isolated_env(tmp_path / "env"), "COORD_URL": hub.url}
        (work / ".claude").mkdir()
        (work / ".claude" / "identity.json").write_text(json.dumps({"machine": "B\u00fcro"}))
        r = Coord(work, env).fails(6, "status")
        assert "B\u00fcro/claude-main" in r.err and "session" in r.err, r
    finally:
        hub.stop()
