"""A merge run whose host stops during the gate (``coord agent`` got SIGTERM) pushes nothing and reports
``retry`` with a reason starting ``host_stopped``, so the hub queues its entries again at once and says why; it
reported nothing before, and the hub, finding the run when the machine's next agent registered, called the host
lost."""

from __future__ import annotations

import threading
from pathlib import Path

from coordhub.orchestrator.merging import MergeRunner
from tests.orchestrator.host.conftest import make_repo, push_file, run
from tests.orchestrator.merge.test_run_ids import Link


def test_a_gate_the_host_stops_reports_retry_host_stopped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    push_file(repo, "issue-1-x")
    main_before = run(repo.origin, "git", "rev-parse", "main")
    link, stopping = Link(), threading.Event()
    runner = MergeRunner(link, "m1", lambda: {"app": repo.path}, tmp_path / "scratch",  # type: ignore[arg-type]
                         {"PATH": "/usr/bin:/bin"}, stopping, lambda: 1)
    threading.Timer(0.5, stopping.set).start()
    runner.execute({"batch_id": "c1c2c3c4", "repo": "app", "target": "main", "method": "rebase",
                    "gate_command": "sleep 30", "gate_timeout_seconds": 60,
                    "entries": [{"id": "e1e2e3e4", "branch": "issue-1-x", "issue": 1, "title": "x"}]}, 1)
    assert [r["outcome"] for r in link.reports] == ["retry"], link.reports
    assert link.reports[0]["reason"].startswith("host_stopped: m1 was stopped during the merge run")
    assert run(repo.origin, "git", "rev-parse", "main") == main_before  # nothing landed


def test_a_git_failure_in_a_local_run_is_reported_not_left_running(tmp_path: Path) -> None:
    """A branch git cannot stack (no history in common with the target: ``git merge-base`` fails) raised out of the
    run with nothing reported: the hub held the entry ``running`` until its deadline, then ran it again, and again.
    It is an ``error`` now, which stops at ``needs_input`` for a human with git's words."""
    repo = make_repo(tmp_path)
    push_file(repo, "issue-1-x", new="--orphan")
    link = Link()
    runner = MergeRunner(link, "m1", lambda: {"app": repo.path}, tmp_path / "scratch",  # type: ignore[arg-type]
                         {"PATH": "/usr/bin:/bin"}, threading.Event(), lambda: 1)
    runner.execute({"batch_id": "c1c2c3c4", "repo": "app", "target": "main", "method": "rebase",
                    "entries": [{"id": "e1e2e3e4", "branch": "issue-1-x", "issue": 1, "title": "x"}]}, 1)
    assert [r["outcome"] for r in link.reports] == ["error"], link.reports
    assert link.reports[0]["reason"].startswith("git: git merge-base origin/main")
