"""Merges and cherry-picks through the guard (review finding F2), with real git and a real hub.

``git merge`` makes its commit without running ``pre-commit``; it runs
``pre-merge-commit``, which the guard installs too. ``git cherry-pick``,
``rebase`` and ``am`` run no commit hook: what they bring in is caught at
``pre-push``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from coordhub.guard import install
from tests.guard.conftest import PROJECT, B, Fleet, Repo
from tests.guard.test_guard import refused_lines

NO_HOOKS = ("-c", "core.hooksPath=/dev/null")  # a commit made elsewhere, without the guard


def feature_touching(repo: Repo, rel: str) -> None:
    """A branch ``feature`` with one commit changing ``rel`` (made without hooks), then back on main with one
    more commit, so a merge of ``feature`` is a real merge commit."""
    repo.git("checkout", "-q", "-b", "feature")
    repo.change(rel)
    repo.git(*NO_HOOKS, "commit", "-q", "-m", f"touch {rel}")
    repo.git("checkout", "-q", "main")
    repo.change("docs/unrelated.md")
    assert repo.commit("unrelated").code == 0


def test_the_merge_hook_is_installed_with_pre_commit(fleet: Fleet) -> None:
    hooks = fleet.repo.path / ".git" / "hooks"
    text = (hooks / "pre-merge-commit").read_text()
    assert install.MARKER in text and 'git-pre-merge-commit "$@"' in text
    assert (hooks / "pre-merge-commit").stat().st_mode & 0o111


def test_a_merge_bringing_in_a_change_to_a_leased_path_is_refused(fleet: Fleet) -> None:
    repo = fleet.repo
    feature_touching(repo, "src/app.py")
    lease = fleet.claim(fleet.b, "src/app.py", "hands off")
    before = repo.head()
    r = repo.git("merge", "--no-ff", "-m", "merge feature", "feature", check=False)
    assert r.code != 0, r
    assert "coord guard: merge commit refused" in r.err, r.err
    assert refused_lines(r.err) == [{"path": "src/app.py", "holder": B, "desc": "hands off", "id": lease["id"],
                                     "resource": "src/app.py", "project": PROJECT}]
    assert "git merge …" in r.err  # the bypass hint names the command that was refused
    assert repo.head() == before
    repo.git("merge", "--abort")
    # the same merge once the lease is gone
    fleet.api(fleet.b, "DELETE", f"/locks/{lease['id']}")
    r = repo.git("merge", "--no-ff", "-m", "merge feature", "feature", check=False)
    assert r.code == 0 and repo.head() != before, r


def test_a_merge_of_free_paths_is_accepted_and_a_bypass_is_recorded(fleet: Fleet) -> None:
    repo = fleet.repo
    fleet.claim(fleet.b, "src/auth/", "auth")
    feature_touching(repo, "src/api/routes.py")
    assert repo.git("merge", "--no-ff", "-m", "merge free", "feature", check=False).code == 0
    repo.git("checkout", "-q", "-b", "feature2", "HEAD~1")
    repo.change("src/auth/login.py")
    repo.git(*NO_HOOKS, "commit", "-q", "-m", "auth")
    repo.git("checkout", "-q", "main")
    r = repo.git("merge", "--no-ff", "-m", "merge auth", "feature2", check=False,
                 env={"COORD_GUARD_BYPASS": "1", "COORD_GUARD_BYPASS_REASON": "hotfix"})
    assert r.code == 0 and "pre-merge-commit accepted despite 1 problem(s)" in r.err, r
    events = fleet.api(fleet.admin, "GET", "/audit", params={"kinds": "guard."})
    details = [e["payload"]["detail"] for e in events]
    assert [(d["hook"], d["reason"], d["paths"]) for d in details] == [
        ("pre-merge-commit", "hotfix", ["src/auth/login.py"])]


def test_the_merge_check_follows_the_fail_mode(fleet: Fleet) -> None:
    repo = fleet.repo
    feature_touching(repo, "src/app.py")
    down = {"COORD_URL": "http://127.0.0.1:9", "COORD_HOOK_FAIL_MODE": "closed"}
    r = repo.git("merge", "--no-ff", "-m", "m", "feature", check=False, env=down)
    assert r.code != 0 and "merge commit refused" in r.err and "COORD_HOOK_FAIL_MODE=closed" in r.err, r
    repo.git("merge", "--abort")
    r = repo.git("merge", "--no-ff", "-m", "m", "feature", check=False, env={**down, "COORD_HOOK_FAIL_MODE": "open"})
    assert r.code == 0 and "merge commit accepted unchecked" in r.err, r


def test_a_cherry_pick_is_caught_at_push(fleet: Fleet, tmp_path: Path) -> None:
    """git runs no commit hook for cherry-pick (nor rebase, am): documented, and pre-push refuses the result."""
    repo = fleet.repo
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "origin.git")], check=True)
    repo.git("remote", "add", "origin", str(tmp_path / "origin.git"))
    repo.git("push", "-q", "origin", "main")
    feature_touching(repo, "src/app.py")
    lease = fleet.claim(fleet.b, "src/app.py", "hands off")
    assert repo.git("cherry-pick", "feature", check=False).code == 0  # no hook runs: git offers none
    r = repo.git("push", "-q", "origin", "main", check=False)
    assert r.code != 0 and "coord guard: push refused" in r.err, r
    assert [(x["path"], x["id"]) for x in refused_lines(r.err)] == [("src/app.py", lease["id"])]


def _origin(repo: Repo, tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "origin.git")], check=True)
    repo.git("remote", "add", "origin", str(tmp_path / "origin.git"))
    repo.git("push", "-q", "origin", "main")


def test_an_edit_made_in_a_merge_commit_is_caught_at_push(fleet: Fleet, tmp_path: Path) -> None:
    """Review: `git log` lists nothing of a merge commit, so a leased file edited in the merge itself (committed
    with --no-verify) was pushed unchecked; a clean merge of free paths still goes through."""
    repo = fleet.repo
    _origin(repo, tmp_path)
    feature_touching(repo, "src/free.py")
    lease = fleet.claim(fleet.b, "src/locked.py", "hands off")
    repo.git("merge", "-q", "--no-ff", "--no-commit", "feature")
    repo.change("src/locked.py")
    repo.git(*NO_HOOKS, "commit", "-q", "--no-verify", "-m", "merge feature")
    r = repo.git("push", "-q", "origin", "main", check=False)
    assert r.code != 0 and "coord guard: push refused" in r.err, r
    assert [(x["path"], x["id"]) for x in refused_lines(r.err)] == [("src/locked.py", lease["id"])]
    repo.git("reset", "-q", "--hard", "HEAD~1")
    repo.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    assert repo.git("push", "-q", "origin", "main", check=False).code == 0


def test_a_forced_push_that_drops_a_commit_to_a_leased_path_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    """Review: a forced push that removes commits sends none, so nothing was checked, yet it changes on the
    remote what those commits changed."""
    repo = fleet.repo
    _origin(repo, tmp_path)
    repo.change("src/locked.py")
    assert repo.commit("before the lease").code == 0
    repo.git("push", "-q", "origin", "main")
    lease = fleet.claim(fleet.b, "src/locked.py", "hands off")
    repo.git("reset", "-q", "--hard", "HEAD~1")
    r = repo.git("push", "-q", "-f", "origin", "main", check=False)
    assert r.code != 0 and "coord guard: push refused" in r.err, r
    assert [(x["path"], x["id"]) for x in refused_lines(r.err)] == [("src/locked.py", lease["id"])]


def test_a_name_that_begins_with_a_newline_is_checked_as_itself(fleet: Fleet) -> None:
    """Review: the guard stripped newlines off the ends of names, so "\\ntop.py" was checked as top.py; a lease
    covering the real name now refuses it."""
    repo = fleet.repo
    lease = fleet.claim(fleet.b, "?top.py", "hands off")
    (repo.path / "\ntop.py").write_text("x\n")
    repo.git("add", "-A")
    r = repo.commit("a name with a newline")
    assert r.code != 0 and "coord guard: commit refused" in r.err, r
    assert lease["id"] in r.err


def test_pushed_names_are_read_exactly_whatever_they_hold(tmp_path: Path) -> None:
    """Review: commits were told apart by a marker character that a name may end with ("secret.py\\x01" was read
    as "secret.py"); they are now told apart by their ids. Empty commits and a merge's own edit are read too."""
    from coordhub.guard import git as guard_git

    repo = tmp_path / "r"

    def run(*args: str) -> str:
        return subprocess.run(["git", *NO_HOOKS, "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                              check=True, capture_output=True, text=True).stdout

    repo.mkdir()
    run("init", "-q", "-b", "main")
    run("commit", "-q", "--allow-empty", "-m", "root")
    for name in ("secret.py\x01", "src/\x01", "\nlead.py"):
        (repo / name).parent.mkdir(exist_ok=True)
        (repo / name).write_text("x")
    run("add", "-A")
    run("commit", "-q", "-m", "odd names")
    run("commit", "-q", "--allow-empty", "-m", "empty")
    run("checkout", "-q", "-b", "feature")
    (repo / "free.py").write_text("f")
    run("add", "free.py")
    run("commit", "-q", "-m", "feature")
    run("checkout", "-q", "main")
    (repo / "README").write_text("m")
    run("add", "README")
    run("commit", "-q", "-m", "main")
    run("merge", "-q", "--no-ff", "--no-commit", "feature")
    (repo / "locked.py").write_text("evil")
    run("add", "locked.py")
    run("commit", "-q", "-m", "merge")
    names = guard_git._logged_names(["HEAD"], repo)
    assert sorted(names) == sorted(["secret.py\x01", "src/\x01", "\nlead.py", "free.py", "README", "locked.py"])
