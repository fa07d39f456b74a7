"""A worker's ``wip:`` saves (the host's commit of a stopped run's uncommitted work, which the next attempt continues
from) never land on the target as commits of their own: each folds into the worker's next commit (a trailing one
into the one before it), so the target gets the worker's commits with the same final tree. They landed as they
were with ``rebase`` and, on the branch's side of the merge commit, with ``merge``."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from coordhub.orchestrator import worktree
from coordhub.orchestrator.merging import MergeRunner
from tests.orchestrator.host.conftest import make_repo, run
from tests.orchestrator.merge.test_run_ids import Link


def _commit(path: Path, name: str, subject: str) -> None:
    (path / name).write_text(f"{name}\n")
    run(path, "git", "add", name)
    run(path, "git", "commit", "-q", "--allow-empty-message", "-m", subject)


def _save(path: Path, name: str, message: str) -> None:
    """The host's save of uncommitted work, as a stopped run leaves it (worktree.save_work)."""
    (path / name).write_text(f"{name}\n")
    assert worktree.save_work(path, message, on_branch=True, machine="m1")


@pytest.mark.parametrize("method", ["rebase", "merge"])
def test_wip_saves_fold_into_the_workers_commits(tmp_path: Path, method: str) -> None:
    repo = make_repo(tmp_path)
    run(repo.path, "git", "checkout", "-q", "-b", "issue-1-x")
    _save(repo.path, "a.txt", "wip: assignment 0000000a attempt 1 (host_stopped), saved by coordhub")
    _commit(repo.path, "b.txt", "Add b")
    _save(repo.path, "c.txt", "wip: leftovers")
    _commit(repo.path, "d.txt", "")  # a worker's commit may have no message: it is kept as it is
    _save(repo.path, "e.txt", "wip: assignment 0000000a attempt 2 (host_stopped), saved by coordhub")
    _commit(repo.path, "f.txt", "wip: half a parser")  # the worker's own 'wip: ' commit is no save: it stays
    _commit(repo.path, "g.txt", "Finish the parser")
    run(repo.path, "git", "push", "-q", "origin", "issue-1-x")
    author = run(repo.path, "git", "log", "-1", "--format=%an <%ae> %ad", "HEAD~3")
    link = Link()
    runner = MergeRunner(link, "m1", lambda: {"app": repo.path}, tmp_path / "scratch",  # type: ignore[arg-type]
                         {"PATH": "/usr/bin:/bin"}, threading.Event(), lambda: 1)
    runner.execute({"batch_id": "c1c2c3c4", "repo": "app", "target": "main", "method": method,
                    "gate_command": "test -f g.txt", "gate_timeout_seconds": 60,
                    "entries": [{"id": "e1e2e3e4", "branch": "issue-1-x", "issue": 1, "title": "x"}]}, 1)
    assert [r["outcome"] for r in link.reports] == ["landing", "merged"], link.reports
    log = run(repo.origin, "git", "log", "--reverse", "--topo-order", "--format=[%s]", "main").splitlines()
    assert log[:5] == ["[init]", "[Add b]", "[]", "[wip: half a parser]", "[Finish the parser]"] and log[5:] == (
        [] if method == "rebase" else ["[Merge branch 'issue-1-x' (#1)]"])
    files = run(repo.origin, "git", "ls-tree", "--name-only", "main").split()
    assert files == ["README.md", "a.txt", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt", "g.txt"]
    # each save is in the worker's next commit (the worker's own 'wip: ' commit too); authors stay the worker's
    tip = "main" if method == "rebase" else "main^2"
    assert run(repo.origin, "git", "show", "--name-only", "--format=", f"{tip}~3").split() == ["a.txt", "b.txt"]
    assert run(repo.origin, "git", "show", "--name-only", "--format=", f"{tip}~2").split() == ["c.txt", "d.txt"]
    assert run(repo.origin, "git", "show", "--name-only", "--format=", f"{tip}~1").split() == ["e.txt", "f.txt"]
    assert run(repo.origin, "git", "log", "-1", "--format=%an <%ae> %ad", f"{tip}~2") == author
