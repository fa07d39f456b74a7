"""Worktrees with a real git repository and a local bare ``origin``: branches made, reused, pushed, cleaned,
and work never lost."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from coordhub.orchestrator import worktree
from coordhub.orchestrator.worktree import GitError
from tests.orchestrator.host.conftest import Repo, make_repo, run


def test_a_new_branch_from_origin_default_is_pushed_and_cleaned(repo: Repo, tmp_path: Path) -> None:
    owned = tmp_path / "wts"
    # origin moved on since the clone last fetched: the branch starts from origin's tip
    other = tmp_path / "other"
    run(tmp_path, "git", "clone", "-q", str(repo.origin), str(other))
    (other / "later.txt").write_text("x")
    run(other, "git", "add", "later.txt")
    run(other, "git", "-c", "user.email=o@o", "-c", "user.name=o", "commit", "-qm", "later on main")
    run(other, "git", "push", "-q", "origin", "main")
    wt = worktree.create(repo.path, owned / "a1", "issue-5-x", "main", owned)
    assert (wt.path / "later.txt").exists()
    assert worktree.new_commits(wt) == 0 and not worktree.dirty(wt.path)
    (wt.path / "f.txt").write_text("work")
    run(wt.path, "git", "add", "f.txt")
    run(wt.path, "git", "commit", "-qm", "the work")
    assert worktree.new_commits(wt) == 1
    worktree.push(wt)
    assert "issue-5-x" in repo.remote_branches() and repo.log("issue-5-x")[0] == "the work"
    worktree.remove(repo.path, wt.path)
    assert not wt.path.exists()
    assert worktree.owned_worktrees(repo.path, owned) == []
    assert run(repo.path, "git", "branch", "--list", "issue-5-x")  # the branch stays


def test_an_existing_branch_is_reused_locally_or_from_origin(repo: Repo, tmp_path: Path) -> None:
    owned = tmp_path / "wts"
    wt = worktree.create(repo.path, owned / "a1", "issue-5-x", "main", owned)
    (wt.path / "f.txt").write_text("first")
    run(wt.path, "git", "add", "f.txt")
    run(wt.path, "git", "commit", "-qm", "first attempt")
    worktree.push(wt)
    worktree.remove(repo.path, wt.path)
    again = worktree.create(repo.path, owned / "a2", "issue-5-x", "main", owned)
    assert (again.path / "f.txt").read_text() == "first" and again.base != wt.base
    worktree.remove(repo.path, again.path)
    # another machine's clone only has it on origin
    clone = make_repo_clone(repo, tmp_path / "clone2")
    third = worktree.create(clone, owned / "a3", "issue-5-x", "main", owned)
    assert (third.path / "f.txt").read_text() == "first"
    assert run(third.path, "git", "rev-parse", "--abbrev-ref", "@{upstream}") == "origin/issue-5-x"


def test_a_push_waits_for_the_repositorys_lock(repo: Repo, tmp_path: Path) -> None:
    """A push updates ``refs/remotes/origin/*`` as a fetch of another run does; git refuses the second of two
    concurrent updates of one ref (CI: a smoke test's ``fetch`` failed with "cannot lock ref
    'refs/remotes/origin/main'" beside a merge run's push), so a push takes the repository's lock first."""
    owned = tmp_path / "wts"
    wt = worktree.create(repo.path, owned / "a1", "issue-6-x", "main", owned)
    (wt.path / "f.txt").write_text("work")
    run(wt.path, "git", "add", "f.txt")
    run(wt.path, "git", "commit", "-qm", "the work")
    pushed = threading.Event()
    pusher = threading.Thread(target=lambda: (worktree.push(wt), pushed.set()))
    with worktree.repo_lock(repo.path):  # as a fetch in another run holds it
        pusher.start()
        assert not pushed.wait(1.5) and "issue-6-x" not in repo.remote_branches()
    assert pushed.wait(30)
    pusher.join()
    assert "issue-6-x" in repo.remote_branches()


def make_repo_clone(repo: Repo, path: Path) -> Path:
    run(path.parent, "git", "clone", "-q", str(repo.origin), str(path))
    return path


def test_a_stale_worktree_of_ours_is_saved_then_replaced(repo: Repo, tmp_path: Path) -> None:
    owned = tmp_path / "wts"
    old = worktree.create(repo.path, owned / "dead", "issue-9", "main", owned)
    (old.path / "unsaved.txt").write_text("work a crashed worker left")
    new = worktree.create(repo.path, owned / "fresh", "issue-9", "main", owned)
    assert not old.path.exists()
    assert (new.path / "unsaved.txt").read_text() == "work a crashed worker left"  # kept as a wip commit
    assert run(new.path, "git", "log", "-1", "--format=%s").startswith("wip: stale worktree of issue-9")


def test_a_branch_checked_out_by_the_user_is_never_touched(repo: Repo, tmp_path: Path) -> None:
    run(repo.path, "git", "checkout", "-q", "-b", "issue-4")
    with pytest.raises(GitError, match="checked out at .* outside this host's worktrees"):
        worktree.create(repo.path, tmp_path / "wts" / "a", "issue-4", "main", tmp_path / "wts")


def test_save_work_on_the_branch_or_beside_it(repo: Repo, tmp_path: Path) -> None:
    owned = tmp_path / "wts"
    wt = worktree.create(repo.path, owned / "a", "issue-1", "main", owned)
    assert worktree.save_work(wt.path, "wip: nothing", on_branch=True) is None
    with pytest.raises(ValueError, match="must start 'wip: '"):  # the merge queue folds saves by that prefix
        worktree.save_work(wt.path, "Fix it", on_branch=True)
    (wt.path / "new.txt").write_text("untracked work")
    (wt.path / "README.md").write_text("changed\n")
    sha = worktree.save_work(wt.path, "wip: beside", on_branch=False, ref_name="a-1")
    assert sha and run(repo.path, "git", "rev-parse", "refs/coordhub/wip/a-1") == sha
    assert worktree.new_commits(wt) == 0 and worktree.dirty(wt.path)  # the branch did not move
    assert run(repo.path, "git", "diff", "--name-only", wt.base, sha).split() == ["README.md", "new.txt"]
    sha2 = worktree.save_work(wt.path, "wip: on it", on_branch=True)
    assert worktree.new_commits(wt) == 1 and not worktree.dirty(wt.path)
    assert run(wt.path, "git", "rev-parse", "HEAD") == sha2


def test_wip_commit_without_a_git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path, "noid")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.gitconfig identity either
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    run(repo.path, "git", "config", "--unset", "user.email")
    run(repo.path, "git", "config", "--unset", "user.name")
    owned = tmp_path / "wts"
    wt = worktree.create(repo.path, owned / "a", "issue-2", "main", owned)
    (wt.path / "x").write_text("x")
    sha = worktree.save_work(wt.path, "wip: no identity", on_branch=True, machine="m1")
    assert sha and run(wt.path, "git", "log", "-1", "--format=%ae") == "agent@m1.coordhub"


def test_bad_repositories_are_explained(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="does not exist"):
        worktree.check_repo(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(GitError, match="is not a git repository"):
        worktree.check_repo(tmp_path / "plain")
    lonely = tmp_path / "lonely"
    run(tmp_path, "git", "init", "-q", "-b", "main", str(lonely))
    with pytest.raises(GitError, match="has no remote 'origin'"):
        worktree.create(lonely, tmp_path / "w", "issue-1", "main", tmp_path)


def test_a_missing_default_branch_is_explained(repo: Repo, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="origin has no branch 'trunk'"):
        worktree.create(repo.path, tmp_path / "w" / "a", "issue-1", "trunk", tmp_path / "w")


def test_branch_names() -> None:
    assert worktree.branch_name(42, "Fix the auth middleware timeout!") == "issue-42-fix-the-auth-middleware-timeout"
    assert worktree.branch_name(7) == "issue-7"


def test_what_a_worker_plants_in_the_shared_git_dir_never_sees_the_host_s_credentials(
        repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker can write to the ``.git`` its worktree shares with the host's clone. A hook or ``core.fsmonitor``
    it plants there ran with the host's whole environment on the host's next ``worktree add`` or ``status``:
    the machine's hub token and a GitHub token (review). Local git calls now run no hook and no fsmonitor and
    get no credentials; a push keeps its hooks (Git LFS uploads in ``pre-push``) and git's credentials, never the
    hub's token."""
    stolen = tmp_path / "stolen.txt"
    steal = tmp_path / "steal.sh"
    steal.write_text(f'#!/bin/sh\necho "$(basename "$0"): COORD_TOKEN=$COORD_TOKEN GH_TOKEN=$GH_TOKEN" >> {stolen}\n'
                     'echo 0\n')
    steal.chmod(0o755)
    run(repo.path, "git", "config", "core.fsmonitor", str(steal))
    hooks = repo.path / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for name in ("post-checkout", "pre-commit", "post-commit", "reference-transaction"):
        (hooks / name).write_bytes(steal.read_bytes())
        (hooks / name).chmod(0o755)
    (hooks / "pre-push").write_text(f'#!/bin/sh\necho "pre-push: COORD_TOKEN=$COORD_TOKEN GH_TOKEN=$GH_TOKEN" >> '
                                    f'{tmp_path / "pushed.txt"}\n')
    (hooks / "pre-push").chmod(0o755)
    monkeypatch.setenv("COORD_TOKEN", "coord_MACHINE_SECRET")
    monkeypatch.setenv("GH_TOKEN", "ghp_SECRET")
    owned = tmp_path / "wts"
    wt = worktree.create(repo.path, owned / "a1", "issue-9-x", "main", owned)
    (wt.path / "f.txt").write_text("uncommitted")
    assert worktree.dirty(wt.path)
    assert worktree.save_work(wt.path, "wip: saved by the host", on_branch=True)
    assert not stolen.exists() or "SECRET" not in stolen.read_text(), stolen.read_text()
    assert not stolen.exists(), "a planted hook or fsmonitor ran"
    # with credentials, and no hook: a fetch that writes a ref runs reference-transaction
    worktree.git(repo.path, "fetch", "--quiet", "origin", "+refs/heads/*:refs/coordhub/fetched/*")
    assert not stolen.exists(), "a planted hook ran on fetch"
    worktree.push(wt)
    # a push's own hooks still run, with git's credentials but never the hub's token (review, 2026-12-06: with it,
    # a hook a worker planted could report runs as the machine, verdicts included)
    assert (tmp_path / "pushed.txt").read_text() == "pre-push: COORD_TOKEN= GH_TOKEN=ghp_SECRET\n"
