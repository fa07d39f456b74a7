"""The git guard on a run that changes no path (a tag push, a branch deletion, a push of commits the remote has,
``git commit --allow-empty``): a halt or a pause stops it as it stops any other run (DESIGN.md, contract point 8).

Before, such a run asked the hub nothing, so it went through a halt. Real ``git`` through the installed hooks, a
real hub.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.client.conftest import serving
from tests.client.test_queue_order import FlakyProxy
from tests.conftest import free_port
from tests.guard.conftest import PROJECT, A, Fleet, Repo


def with_origin(repo: Repo, tmp_path: Path) -> Path:
    """A bare ``origin`` holding ``main`` and a ``feature`` branch (pushed while nothing stops it)."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    repo.git("remote", "add", "origin", str(origin))
    repo.git("push", "-q", "origin", "main", "main:refs/heads/feature")
    return origin


def remote_refs(origin: Path) -> list[str]:
    out = subprocess.run(["git", "for-each-ref", "--format=%(refname)"], cwd=origin, capture_output=True, text=True,
                         check=True).stdout
    return out.split()


def bypassed(fleet: Fleet) -> list[dict[str, Any]]:
    return [e["payload"]["detail"] for e in fleet.api(fleet.admin, "GET", "/audit", params={"kinds": "guard."})]


def test_a_tag_push_under_the_fleet_halt_is_refused_and_the_bypass_records_it(fleet: Fleet, tmp_path: Path) -> None:
    repo = fleet.repo
    origin = with_origin(repo, tmp_path)
    repo.git("tag", "v1")
    fleet.api(fleet.admin, "POST", "/halt", json={"scope": "fleet", "reason": "incident"})
    r = repo.git("push", "-q", "origin", "v1", check=False)
    assert r.code != 0 and "coord guard: push refused: the fleet is halted by " in r.err and "incident" in r.err, r
    assert "No commits or pushes until it is resumed" in r.err
    assert "refs/tags/v1" not in remote_refs(origin)
    r = repo.git("push", "-q", "origin", "v1", env={"COORD_GUARD_BYPASS": "1", "COORD_GUARD_BYPASS_REASON": "release"},
                 check=False)
    assert r.code == 0 and "pre-push accepted despite a halt" in r.err and "bypass recorded on the hub" in r.err, r
    assert "refs/tags/v1" in remote_refs(origin)
    [detail] = bypassed(fleet)
    assert detail["hook"] == "pre-push" and detail["paths"] == [] and detail["reason"] == "release"
    assert detail["checked"] is True and "the fleet is halted" in detail["halt"] and "incident" in detail["halt"]
    fleet.api(fleet.admin, "POST", "/resume", json={"scope": "fleet", "engage_all": True})
    repo.git("tag", "v2")
    r = repo.git("push", "-q", "origin", "v2", check=False)
    assert r.code == 0 and r.err == "", r


def test_a_branch_deletion_or_a_push_of_known_commits_under_a_project_halt_is_refused(fleet: Fleet,
                                                                                      tmp_path: Path) -> None:
    repo = fleet.repo
    origin = with_origin(repo, tmp_path)
    fleet.api(fleet.admin, "POST", "/halt", json={"scope": f"project:{PROJECT}", "reason": "bad deploy"})
    r = repo.git("push", "-q", "origin", "--delete", "feature", check=False)
    assert r.code != 0 and f"coord guard: push refused: project:{PROJECT} is halted by " in r.err, r
    assert "bad deploy" in r.err and "refs/heads/feature" in remote_refs(origin)
    r = repo.git("push", "-q", "origin", "main:refs/heads/copy", check=False)  # commits origin already has
    assert r.code != 0 and f"project:{PROJECT} is halted by " in r.err, r
    assert "refs/heads/copy" not in remote_refs(origin)
    fleet.api(fleet.admin, "POST", "/resume", json={"scope": f"project:{PROJECT}", "engage_all": True})
    r = repo.git("push", "-q", "origin", "--delete", "feature", check=False)
    assert r.code == 0 and r.err == "", r
    r = repo.git("push", "-q", "origin", "main:refs/heads/copy", check=False)
    assert r.code == 0 and r.err == "", r
    assert "refs/heads/feature" not in remote_refs(origin) and "refs/heads/copy" in remote_refs(origin)


def test_an_empty_commit_under_a_halt_or_a_pause_is_refused(fleet: Fleet) -> None:
    repo = fleet.repo
    before = repo.head()
    fleet.api(fleet.admin, "POST", "/halt", json={"scope": f"project:{PROJECT}", "reason": "bad deploy"})
    r = repo.git("commit", "-q", "--allow-empty", "-m", "empty", check=False)
    assert r.code == 1 and f"coord guard: commit refused: project:{PROJECT} is halted by " in r.err, r
    assert "bad deploy" in r.err and repo.head() == before
    fleet.api(fleet.admin, "POST", "/resume", json={"scope": f"project:{PROJECT}", "engage_all": True})
    fleet.api(fleet.a, "POST", "/presence/register", json={})  # active when the halt falls: paused by the resume
    fleet.api(fleet.admin, "POST", "/halt", json={"scope": "fleet", "reason": "incident"})
    assert fleet.api(fleet.admin, "POST", "/resume", json={"scope": "fleet"})["paused"] == [A]
    r = repo.git("commit", "-q", "--allow-empty", "-m", "empty", check=False)
    assert r.code == 1 and "coord guard: commit refused: your session is paused since " in r.err, r
    assert "coord engage" in r.err and repo.head() == before
    r = repo.git("commit", "-q", "--allow-empty", "-m", "empty", env={"COORD_GUARD_BYPASS": "1"}, check=False)
    assert r.code == 0 and "pre-commit accepted despite a halt" in r.err and repo.head() != before, r
    assert "your session is paused" in bypassed(fleet)[0]["halt"]
    fleet.api(fleet.a, "POST", "/engage")
    r = repo.git("commit", "-q", "--allow-empty", "-m", "empty", check=False)
    assert r.code == 0 and r.err == "", r


def test_without_a_halt_an_empty_run_asks_one_request_and_passes(fleet: Fleet, tmp_path: Path) -> None:
    repo = fleet.repo
    fleet.api(fleet.admin, "POST", "/halt", json={"scope": "project:elsewhere", "reason": "not here"})
    with serving(FlakyProxy(fleet.hub.url)) as proxy:
        repo.env["COORD_URL"] = proxy.url  # the token is sent to the first hub URL it is used with
        with_origin(repo, tmp_path)
        asked = len(proxy.seen)
        r = repo.git("commit", "-q", "--allow-empty", "-m", "empty", check=False)
        assert r.code == 0 and r.err == "", r
        assert len(proxy.seen) == asked + 1, proxy.seen
        repo.git("tag", "v1")
        r = repo.git("push", "-q", "origin", "main", "v1", check=False)  # an empty commit and a tag: no path
        assert r.code == 0 and r.err == "", r
        assert len(proxy.seen) == asked + 2, proxy.seen
    assert {(m, p.partition("?")[0]) for _, m, p in proxy.seen[asked:]} == {("GET", "/api/coord/locks/conflicts")}


def test_an_empty_run_follows_the_fail_mode_when_the_hub_cannot_be_asked(fleet: Fleet, tmp_path: Path) -> None:
    repo = fleet.repo
    with_origin(repo, tmp_path)
    repo.git("tag", "v1")
    down = {"COORD_URL": f"http://127.0.0.1:{free_port()}"}
    r = repo.git("push", "-q", "origin", "v1", env={**down, "COORD_HOOK_FAIL_MODE": "closed"}, check=False)
    assert r.code != 0 and "coord guard: push refused: the hub could not be asked" in r.err, r
    r = repo.git("commit", "-q", "--allow-empty", "-m", "empty", env=down, check=False)
    assert r.code == 0 and "warning: the hub could not be asked" in r.err and "accepted unchecked" in r.err, r
