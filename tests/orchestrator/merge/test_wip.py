"""A worker's ``wip:`` saves (the host's commit of a stopped run's uncommitted work, which the next attempt continues
from) never land on the target as commits of their own: each folds into the worker's next commit (a trailing one
into the one before it), so the target gets the worker's commits with the same final tree. They landed as they
were with ``rebase`` and, on the branch's side of the merge commit, with ``merge``."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from coordhub.orchestrator.merging import MergeRunner
from tests.orchestrator.host.conftest import make_repo, run
from tests.orchestrator.merge.test_run_ids import Link


def _commit(path: Path, name: str, subject: str) -> None:
    (path / name).write_text(f"{name}\n")
    run(path, "git", "add", name)
    run(path, "git", "commit", "-q", "--allow-empty-message", "-m", subject)


@pytest.mark.parametrize("method", ["rebase", "merge"])
def test_wip_saves_fold_into_the_workers_commits(tmp_path: Path, method: str) -> None:
    repo = make_repo(tmp_path)
    run(repo.path, "git", "checkout", "-q", "-b", "issue-1-x")
    _commit(repo.path, "a.txt", "wip: assignment 0000000a attempt 1 (host_stopped), saved by coordhub")
    _commit(repo.path, "b.txt", "Add b")
    _commit(repo.path, "c.txt", "wip: leftovers")
    _commit(repo.path, "d.txt", "")  # a worker's commit may have no message: it is kept as it is
    _commit(repo.path, "e.txt", "wip: assignment 0000000a attempt 2 (host_stopped), saved by coordhub")
    run(repo.path, "git", "push", "-q", "origin", "issue-1-x")
    author = run(repo.path, "git", "log", "-1", "--format=%an <%ae> %ad", "HEAD~1")
    link = Link()
    runner = MergeRunner(link, "m1", lambda: {"app": repo.path}, tmp_path / "scratch",  # type: ignore[arg-type]
                         {"PATH": "/usr/bin:/bin"}, threading.Event(), lambda: 1)
    runner.execute({"batch_id": "c1c2c3c4", "repo": "app", "target": "main", "method": method,
                    "gate_command": "test -f e.txt", "gate_timeout_seconds": 60,
                    "entries": [{"id": "e1e2e3e4", "branch": "issue-1-x", "issue": 1, "title": "x"}]}, 1)
    assert [r["outcome"] for r in link.reports] == ["landing", "merged"], link.reports
    log = run(repo.origin, "git", "log", "--reverse", "--topo-order", "--format=[%s]", "main").splitlines()
    assert log[:3] == ["[init]", "[Add b]", "[]"] and log[3:] == ([] if method == "rebase" else
                                                                  ["[Merge branch 'issue-1-x' (#1)]"])
    files = run(repo.origin, "git", "ls-tree", "--name-only", "main").split()
    assert files == ["README.md", "a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]
    # "Add b" holds the wip before it; the last holds c and the trailing wip; their author stays the worker's
    assert run(repo.origin, "git", "show", "--name-only", "--format=", "main~1" if method == "rebase"
               else "main^2~1").split() == ["a.txt", "b.txt"]
    assert run(repo.origin, "git", "log", "-1", "--format=%an <%ae> %ad", "main" if method == "rebase"
               else "main^2") == author
