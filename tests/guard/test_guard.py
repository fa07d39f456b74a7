"""The git guard end to end: real ``git commit`` / ``git push`` through the installed hooks, a real hub."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import httpx2

from coordhub.guard import check
from tests.conftest import free_port
from tests.guard.conftest import PROJECT, A, B, Fleet, Repo, init_repo

LEASE_LINE = re.compile(r"  (?P<path>\S+): leased by (?P<holder>\S+) — \"(?P<desc>[^\"]+)\" \(lease (?P<id>[0-9a-f-]+) "
                        r"on (?P<resource>\S+) in project (?P<project>\S+), until \S+, \d+ min left\)")


def refused_lines(stderr: str) -> list[dict[str, str]]:
    return [m.groupdict() for m in LEASE_LINE.finditer(stderr)]


# ---- pre-commit -----------------------------------------------------------------------------------

def test_commit_touching_a_path_leased_by_another_session_is_refused(fleet: Fleet) -> None:
    repo = fleet.repo
    lease = fleet.claim(fleet.b, "src/", "refactor auth")
    before = repo.head()
    repo.change("src/app.py")
    repo.change("docs/notes.md")
    r = repo.commit()
    assert r.code == 1, r
    assert "coord guard: commit refused" in r.err
    assert refused_lines(r.err) == [{"path": "src/app.py", "holder": B, "desc": "refactor auth", "id": lease["id"],
                                     "resource": "src/", "project": PROJECT}]
    assert "docs/notes.md" not in r.err
    assert "COORD_GUARD_BYPASS=1" in r.err and B in r.err.splitlines()[-1]
    assert repo.head() == before


def test_free_paths_and_own_live_leases_are_accepted(fleet: Fleet) -> None:
    repo = fleet.repo
    fleet.claim(fleet.b, "src/auth/", "auth")
    fleet.claim(fleet.a, "src/api/", "api")
    repo.change("src/api/routes.py")
    repo.change("src/other.py")
    r = repo.commit()
    assert r.code == 0 and r.err == "", r


def test_renames_and_deletions_are_checked_on_both_sides(fleet: Fleet) -> None:
    repo = fleet.repo
    fleet.claim(fleet.b, "lib/old.py", "keeping old")
    repo.git("mv", "lib/old.py", "lib/new.py")
    r = repo.commit()
    assert r.code == 1 and [x["path"] for x in refused_lines(r.err)] == ["lib/old.py"], r
    repo.git("mv", "lib/new.py", "lib/old.py")
    fleet.claim(fleet.b, "lib/gone.py", "needs it")
    repo.git("rm", "-q", "lib/gone.py")
    r = repo.commit()
    assert r.code == 1 and [x["path"] for x in refused_lines(r.err)] == ["lib/gone.py"], r


def test_commit_a_stages_through_a_temporary_index(fleet: Fleet) -> None:
    repo = fleet.repo
    fleet.claim(fleet.b, "README.md", "docs")
    (repo.path / "README.md").write_text("changed\n")
    r = repo.git("commit", "-q", "-a", "-m", "all", check=False)
    assert r.code == 1 and "README.md: leased by" in r.err, r


def test_own_lease_needs_a_current_fence(fleet: Fleet) -> None:
    repo = fleet.repo
    lease = fleet.claim(fleet.a, "src/api/", "api work")
    repo.change("src/api/x.py")
    assert repo.commit().code == 0
    fleet.api(fleet.admin, "DELETE", f"/locks/{lease['id']}", params={"force": "true"})
    repo.change("src/api/x.py", "more\n")
    r = repo.commit()
    assert r.code == 1, r
    assert (f"src/api/x.py: your lease {lease['id']} on src/api/ (fence {lease['fence']}) is no longer current: "
            "the lease is revoked since ") in r.err
    assert "claim the paths again" in r.err
    again = fleet.claim(fleet.a, "src/api/", "api work, again")
    assert again["fence"] > lease["fence"]
    r = repo.commit()
    assert r.code == 0 and r.err == "", r
    fleet.api(fleet.a, "DELETE", f"/locks/{again['id']}")  # released by its holder: nothing to refuse
    repo.change("src/api/x.py", "after\n")
    assert repo.commit().code == 0


def test_bypass_is_accepted_and_recorded(fleet: Fleet) -> None:
    repo = fleet.repo
    lease = fleet.claim(fleet.b, "src/", "refactor auth")
    repo.change("src/app.py")
    r = repo.commit(env={"COORD_GUARD_BYPASS": "1", "COORD_GUARD_BYPASS_REASON": "prod hotfix"})
    assert r.code == 0, r
    assert "COORD_GUARD_BYPASS=1: pre-commit accepted despite 1 problem(s)" in r.err
    assert "bypass recorded on the hub as event" in r.err
    events = fleet.api(fleet.admin, "GET", "/audit", params={"kinds": "guard."})
    assert [e["kind"] for e in events] == ["guard.bypassed"]
    event = events[0]
    assert event["session_id"] == A and event["project_key"] == PROJECT
    detail = event["payload"]["detail"]
    assert detail["hook"] == "pre-commit" and detail["paths"] == ["src/app.py"] and detail["reason"] == "prod hotfix"
    assert detail["checked"] is True and lease["id"] in detail["problems"][0]
    assert detail["head"] == repo.git("rev-parse", "HEAD~1").out.strip()


def test_bypass_with_the_hub_down_says_it_was_not_recorded(fleet: Fleet) -> None:
    repo = fleet.repo
    repo.change("src/app.py")
    r = repo.commit(env={"COORD_GUARD_BYPASS": "1", "COORD_URL": f"http://127.0.0.1:{free_port()}"})
    assert r.code == 0
    assert "accepted unchecked" in r.err and "could NOT be recorded" in r.err


def test_hub_down_fails_open_by_default_and_closed_when_asked(fleet: Fleet) -> None:
    repo = fleet.repo
    down = f"http://127.0.0.1:{free_port()}"
    repo.change("src/a.py")
    r = repo.commit(env={"COORD_URL": down, "COORD_HOOK_FAIL_MODE": "closed"})
    assert r.code == 1 and "commit refused: the hub could not be asked" in r.err, r
    r = repo.commit(env={"COORD_URL": down})
    assert r.code == 0 and "warning: the hub could not be asked" in r.err and "accepted unchecked" in r.err


def test_a_path_no_lease_can_name_is_refused_fail_closed_and_reported_fail_open(fleet: Fleet) -> None:
    """Issue 7, point 13: a file name with a newline is never silently "not checked"."""
    repo = fleet.repo
    repo.change("src/new\nline.py")
    r = repo.commit(env={"COORD_HOOK_FAIL_MODE": "closed"})
    assert r.code == 1 and "commit refused: 1 path(s) cannot be checked" in r.err, r
    assert "  src/new\\nline.py: not a valid lease resource" in r.err
    r = repo.commit()
    assert r.code == 0 and "warning: 1 path(s) cannot be checked" in r.err and "accepted unchecked" in r.err, r


def test_a_linked_worktree_uses_the_main_repositorys_project_key(fleet: Fleet, tmp_path: Path) -> None:
    fleet.repo.git("worktree", "add", "-q", "-b", "agent-7", str(tmp_path / "agent-7"))
    tree = Repo(tmp_path / "agent-7", fleet.repo.env)
    fleet.claim(fleet.b, "src/", "refactor")
    tree.change("src/app.py")
    r = tree.commit()
    assert r.code == 1 and f"in project {PROJECT}" in r.err, r


def test_a_repository_named_in_other_case_is_the_same_project(fleet: Fleet, tmp_path: Path) -> None:
    """The field defect: a clone named ``GuruRMM`` (its key from the directory name) and a lease under seed 001's
    slug ``gururmm`` did not see each other, so the commit went through."""
    clone = init_repo(tmp_path / "clones" / "GuruRMM", fleet.repo.env)
    fleet.claim(fleet.b, "src/", "refactor")
    clone.change("src/app.py")
    r = clone.commit()
    assert r.code == 1 and f"in project {PROJECT}" in r.err, r


def test_a_ledger_entry_written_before_keys_were_folded_is_still_checked() -> None:
    """The guard's ledger keeps the hub's spelling of when it was written; an ended lease recorded as ``GuruRMM``
    still refuses the commit it covered."""
    known = {"l1": {"fence": 7, "resource": "src/", "project_key": "GuruRMM", "session_id": A, "seen": 1.0}}
    asked: list[int] = []

    def ended(fence: int, resource: str | None) -> dict[str, Any]:
        asked.append(fence)
        return {"current": False, "reason": "the lease is expired", "lease": {"id": "l1", "state": "expired"}}

    verdict = check.evaluate(["src/app.py"], A, PROJECT, {}, [], known, ended)
    assert asked == [7] and [(p.path, p.kind) for p in verdict.problems] == [("src/app.py", "stale")]


# ---- pre-push -------------------------------------------------------------------------------------

def test_push_of_a_commit_touching_a_leased_path_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    repo = fleet.repo
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "origin.git")], check=True)
    repo.git("remote", "add", "origin", str(tmp_path / "origin.git"))
    repo.git("push", "-q", "origin", "main")
    repo.change("src/app.py")
    repo.commit("app")
    repo.change("docs/a.md")
    repo.commit("docs")
    lease = fleet.claim(fleet.b, "src/app.py", "hands off")
    r = repo.git("push", "-q", "origin", "main", check=False)
    assert r.code != 0 and "coord guard: push refused" in r.err, r
    assert [(x["path"], x["id"]) for x in refused_lines(r.err)] == [("src/app.py", lease["id"])]
    remote_head = subprocess.run(["git", "rev-parse", "main"], cwd=tmp_path / "origin.git", capture_output=True,
                                 text=True, check=True).stdout.strip()
    assert remote_head == repo.git("rev-parse", "HEAD~2").out.strip()
    # a new branch with only free paths goes through
    repo.git("checkout", "-q", "-b", "docs-only", "HEAD~2")
    repo.change("docs/b.md")
    repo.commit("docs b")
    r = repo.git("push", "-q", "origin", "docs-only", check=False)
    assert r.code == 0 and r.err == "", r
    fleet.api(fleet.b, "DELETE", f"/locks/{lease['id']}")
    repo.git("checkout", "-q", "main")
    assert repo.git("push", "-q", "origin", "main", check=False).code == 0


def test_leases_past_the_first_page_are_checked(fleet: Fleet) -> None:
    # The hub answers 500 leases a request; the guard read only that first page, so a path under a lease
    # granted after 500 others of the project was accepted.
    with httpx2.Client(base_url=fleet.hub.url + "/api/coord", headers=fleet.b, timeout=30) as http:
        for i in range(520):
            r = http.post("/locks", json={"project_key": PROJECT, "resource": f"gen/f{i}.py", "ttl_hours": 1})
            assert r.status_code == 201, r.text
    late = fleet.claim(fleet.b, "src/late.py", "the 521st lease")
    fleet.repo.change("src/late.py")
    r = fleet.repo.commit()
    assert r.code == 1, r
    assert refused_lines(r.err) == [{"path": "src/late.py", "holder": B, "desc": "the 521st lease",
                                     "id": late["id"], "resource": "src/late.py", "project": PROJECT}]
    fleet.repo.git("reset", "-q", "--", "src/late.py")
    fleet.repo.change("gen/free.py")  # overlaps none of the 521: accepted after reading both pages
    assert fleet.repo.commit().code == 0



def test_a_path_that_is_not_utf8_is_reported_never_a_traceback_and_hides_no_other_path(fleet: Fleet) -> None:
    """A file name git gives as bytes that are not UTF-8 (a Latin-1 name) crashed the guard with a
    UnicodeDecodeError; it is one path no lease can name (unchecked, as a control character is), and the other
    paths of the commit are still checked against the hub."""
    repo = fleet.repo
    (repo.path / "src").mkdir(exist_ok=True)
    name = b"src/caf\xe9.py"
    with open(bytes(repo.path) + b"/" + name, "wb") as f:
        f.write(b"x\n")
    subprocess.run([b"git", b"add", b"--", name], cwd=repo.path, env=repo.env, check=True)
    r = repo.commit(env={"COORD_HOOK_FAIL_MODE": "closed"})
    assert r.code == 1 and "commit refused: 1 path(s) cannot be checked" in r.err, r
    assert "src/caf" in r.err and "not a valid lease resource" in r.err
    lease = fleet.claim(fleet.b, "lib/old.py", "mine")
    repo.change("lib/old.py")
    r = repo.commit()
    assert r.code == 1 and [x["id"] for x in refused_lines(r.err)] == [lease["id"]], r
    # a bypass of such a commit is still recorded for the fleet (the name as UTF-8 with the odd byte escaped)
    r = repo.commit(env={"COORD_GUARD_BYPASS": "1"})
    assert r.code == 0 and "bypass recorded on the hub" in r.err, r


# ---- halts ----------------------------------------------------------------------------------------

def test_a_halt_of_the_project_refuses_commits_there_and_the_bypass_names_it(fleet: Fleet) -> None:
    repo = fleet.repo
    before = repo.head()
    fleet.api(fleet.admin, "POST", "/halt", json={"scope": f"project:{PROJECT}", "reason": "bad deploy"})
    repo.change("docs/notes.md")  # no lease anywhere: only the halt stops it
    r = repo.commit()
    assert r.code == 1, r
    assert f"coord guard: commit refused: project:{PROJECT} is halted by " in r.err and "bad deploy" in r.err
    assert "coord resume" in r.err and repo.head() == before
    r = repo.commit(env={"COORD_GUARD_BYPASS": "1", "COORD_GUARD_BYPASS_REASON": "hotfix"})
    assert r.code == 0 and "accepted despite a halt" in r.err and "bad deploy" in r.err, r
    assert repo.head() != before


def test_the_fleet_halt_refuses_commits_and_resuming_lets_them_through(fleet: Fleet) -> None:
    repo = fleet.repo
    fleet.api(fleet.admin, "POST", "/halt", json={"scope": "fleet", "reason": "incident"})
    repo.change("src/app.py")
    r = repo.commit()
    assert r.code == 1 and "the fleet is halted by " in r.err and "incident" in r.err, r
    fleet.api(fleet.admin, "POST", "/resume", json={"scope": "fleet", "engage_all": True})
    r = repo.commit()
    assert r.code == 0 and r.err == "", r


def test_a_halt_of_another_project_lets_commits_through(fleet: Fleet) -> None:
    fleet.api(fleet.admin, "POST", "/halt", json={"scope": "project:elsewhere", "reason": "not here"})
    fleet.repo.change("src/app.py")
    r = fleet.repo.commit()
    assert r.code == 0 and r.err == "", r


def test_a_halt_the_hub_named_stands_when_a_later_request_fails(fleet: Fleet) -> None:
    # /locks/conflicts answers the halt; the committer's own leases (GET /locks) then fail with a 500. Before, that
    # failure counted as "the hub could not be asked" and COORD_HOOK_FAIL_MODE=open accepted the commit unchecked.
    from tests.client.conftest import serving
    from tests.client.test_queue_order import FlakyProxy

    fleet.api(fleet.admin, "POST", "/halt", json={"scope": f"project:{PROJECT}", "reason": "bad deploy"})
    fleet.repo.change("docs/notes.md")
    with serving(FlakyProxy(fleet.hub.url)) as proxy:
        proxy.broken.add("/api/coord/locks")
        r = fleet.repo.commit(env={"COORD_URL": proxy.url})
    assert ("GET", "/api/coord/locks") in {(m, p.partition("?")[0]) for _, m, p in proxy.seen}, proxy.seen
    assert r.code == 1 and f"project:{PROJECT} is halted by " in r.err and "accepted unchecked" not in r.err, r
