"""A lease claimed under another project than the one the hooks check in that repository says so.

The edit hook and the git guard check a repository's files in one project
(COORD_PROJECT, else identity.json ``project``, else the repository's name).
Following README's first steps (``coord lock claim gururmm server/src/ …``)
in a repository named otherwise granted a lease that stopped no edit and no
commit of another session there, and nothing said so.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LiveHub
from tests.coordcli import Coord, git_init, isolated_env

A = "HOWARD-HOME/claude-main"


def test_a_path_claimed_under_another_project_than_the_hooks_gets_a_warning(live_hub: LiveHub,
                                                                           tmp_path: Path) -> None:
    repo = git_init(tmp_path / "shop")
    (repo / "src").mkdir()
    a = Coord(repo / "src", isolated_env(tmp_path), url=live_hub.url, token=live_hub.token(A))
    for resource in ("a.py", "**/*.py"):
        r = a.ok("lock", "claim", "gururmm", resource, "README's project")
        assert r.err.startswith("coord: warning: the hooks and the git guard in ") and len(r.err.splitlines()) == 1
        assert "project 'shop'" in r.err and "not 'gururmm'" in r.err and "coord lock claim shop" in r.err
    assert a.ok("lock", "claim", "shop", "b.py", "the hooks' project").err == ""
    assert a.ok("lock", "claim", "Shop", "e.py", "project keys compare case-insensitively").err == ""
    assert a.ok("lock", "claim", "gururmm", "deploy:staging", "a name, no file").err == ""
    own = a.with_(env={**a.env, "COORD_PROJECT": "gururmm"})
    assert own.ok("lock", "claim", "gururmm", "c.py", "COORD_PROJECT names it").err == ""


def test_outside_a_git_repository_a_claim_says_nothing_of_projects(live_hub: LiveHub, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    a = Coord(tmp_path / "plain", isolated_env(tmp_path), url=live_hub.url, token=live_hub.token(A))
    assert a.ok("lock", "claim", "gururmm", "server/src/", "no repository here").err == ""
