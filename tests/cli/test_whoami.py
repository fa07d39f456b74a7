"""``coord whoami``: which session, on which hub, with which token, identity.json and lease project.

A newcomer typing ``coord whoami`` got "No such command" and a pointer to
``coord status``'s first line, which names neither whether the token is an
admin's, nor the identity.json read, nor the project the hooks check leases in.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import LiveHub, free_port
from tests.coordcli import Coord, git_init, isolated_env

A = "HOWARD-HOME/claude-main"


def _repo(tmp_path: Path, identity: dict[str, str]) -> Path:
    """A git working tree named ``shop-repo`` with an untracked ``.claude/identity.json`` holding ``identity``."""
    repo = git_init(tmp_path / "shop-repo")
    (repo / ".claude").mkdir()
    (repo / ".claude" / "identity.json").write_text(json.dumps(identity))
    return repo


def test_whoami_names_the_session_the_hub_the_sources_the_identity_file_and_the_lease_project(
        live_hub: LiveHub, tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"coord_api": live_hub.url, "token": live_hub.token(A), "project": "shop"})
    identity = repo / ".claude" / "identity.json"
    a = Coord(repo / "src", isolated_env(tmp_path))
    a.cwd.mkdir()
    a.ok("trust", live_hub.url)  # once: a project's identity.json named the hub
    assert a.ok("whoami").out.splitlines() == [
        f"session {A} (token from {identity}) on {live_hub.url} (from {identity})",  # as `coord status` says it
        "admin: no",
        f"identity.json: {identity}",
        # the key a project's identity.json names is checked beside the repository's name (tests/hooks/
        # test_planted_identity.py): the file may have come with the repository
        f"lease project: shop and shop-repo, the repository's name (checked by the hooks and the git guard in {repo})",
    ]
    assert a.ok("status").out.splitlines()[0] == a.ok("whoami").out.splitlines()[0]
    me = a.json("whoami")
    assert {k: me[k] for k in ("session_id", "admin", "url", "url_source", "token_source", "identity_file",
                               "project")} == {
        "session_id": A, "admin": False, "url": live_hub.url, "url_source": str(identity),
        "token_source": str(identity),
        "identity_file": str(identity), "project": {"key": "shop", "also": ["shop-repo"], "root": str(repo)}}
    assert me["presence"]["session_id"] == A


def test_whoami_says_an_admin_token_and_the_repository_name_as_the_project(live_hub: LiveHub, tmp_path: Path) -> None:
    repo = git_init(tmp_path / "shop-repo")
    env = isolated_env(tmp_path, COORD_URL=live_hub.url, COORD_TOKEN=live_hub.token("ops", admin=True))
    lines = Coord(repo, env).ok("whoami").out.splitlines()
    assert lines == [f"session ops (token from COORD_TOKEN) on {live_hub.url} (from COORD_URL)", "admin: yes",
                     "identity.json: none", f"lease project: shop-repo (checked by the hooks and the git guard in "
                                            f"{repo})"]
    by_env = Coord(repo, {**env, "COORD_PROJECT": "billing"}).json("whoami")
    assert by_env["admin"] is True and by_env["identity_file"] is None
    assert by_env["project"] == {"key": "billing", "also": [], "root": str(repo)}


def test_whoami_exits_as_the_other_reads(live_hub: LiveHub, tmp_path: Path) -> None:
    coord = Coord(tmp_path, isolated_env(tmp_path))
    down = f"http://127.0.0.1:{free_port()}"
    coord.with_(url=down, token="any").unreachable("whoami")  # exit 3, one line
    r = coord.with_(url=live_hub.url).fails(6, "whoami")  # no token: the CLI's own line, exit 6
    assert "needs a token" in r.err and "COORD_TOKEN" in r.err
    refused = coord.with_(url=live_hub.url, token="not-a-token")("whoami", "--json")
    assert refused.code == 6 and refused.json()["error"]["code"] == "unauthorized"


def test_the_hubs_admin_token_in_coord_token_is_not_refused_for_the_identitys_session_name(
        live_hub: LiveHub, tmp_path: Path) -> None:
    # `COORD_TOKEN=<admin token> coord whoami` in a project whose identity.json names the user's session exited 6
    # (403 session_mismatch): the client sent the name beside the admin token, which acts as 'admin' whatever the
    # name. Admin commands already left it out; a session command could not tell the token was the admin's.
    repo = _repo(tmp_path, {"session": A, "project": "shop"})
    env = isolated_env(tmp_path, COORD_URL=live_hub.url, COORD_TOKEN=live_hub.admin_token,
                       COORD_DATA_DIR=str(live_hub.data_dir))
    me = Coord(repo, env).json("whoami")
    assert (me["session_id"], me["admin"]) == ("admin", True), me
    # ... but it is said on each command: the admin's leases and messages are nobody's session's, and two agents
    # sharing the token never conflict (the slow path and the fast path's two reads)
    for args in (("whoami",), ("lock", "list"), ("msg", "inbox"), ("todo", "list")):
        done = Coord(repo, env).ok(*args)
        assert (f"coord: warning: the token from COORD_TOKEN is the hub's admin token: this acts as the admin, not as "
                f"{A} (a session's own token: coord token create {A})") in done.err, (args, done)
    named = Coord(repo, env).ok("--session", A, "whoami")
    assert f"coord: warning: --session {A} is not used: the hub's admin token acts as the admin" in named.err, named
    fast = Coord(repo, env).ok("--session", A, "lock", "list")  # served by the fast path: the same warning
    assert fast.err == f"coord: warning: --session {A} is not used: the hub's admin token acts as the admin\n", fast
    # a session token beside a name that is not its session is still refused: the check is kept for those
    other = Coord(repo, {**env, "COORD_TOKEN": live_hub.token("desk/claude-main")})("whoami", "--json")
    assert other.code == 6 and other.json()["error"]["code"] == "session_mismatch", other
