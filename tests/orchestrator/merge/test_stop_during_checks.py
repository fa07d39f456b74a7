"""A host stopping while a PR's CI checks run (``coord agent`` got SIGTERM) ends the run at once and reports
``retry`` ``host_stopped``, with the PR and the commit it pushed to the PR's head, so the next run (any host)
takes the same PR up where it was: its head is this push, not a push after the gates, and it lands once.

Before, the stop read as "CI checks still pending at checks_timeout_seconds": a ``red`` gate, which queued a fix
worker (or stopped at ``needs_input``) for checks that had not failed; and a next run, finding the PR's head at
the host's own rebase of the gated commit (the target had moved), refused it as ``moved`` and ran its gates again.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from coordhub.orchestrator.merging import MergeRunner
from tests.fakes.ghstore import FakeGitHub
from tests.orchestrator.host.conftest import make_repo, push_file, run, stop_when
from tests.orchestrator.merge.test_run_ids import Link


def test_a_stop_while_checks_run_requeues_the_pr_and_the_next_run_lands_it_once(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    pin = push_file(repo, "issue-1-x", "Add x")
    push_file(repo, "main", "Add y", "y.txt", new=None)  # the target moves: the PR's head is a rebase of the pin
    fake = FakeGitHub(tmp_path)
    fake.setup_repo("acme/app", repo.origin, checks=[{"name": "ci", "conclusion": "success", "polls": 3}])
    env = {"PATH": f"{fake.bin}:/usr/bin:/bin", **fake.env}
    entry = {"id": "e1e2e3e4", "branch": "issue-1-x", "issue": 1, "title": "x", "gated_sha": pin}
    job = {"repo": "app", "target": "main", "method": "rebase", "github": "acme/app", "require_checks": True}
    link, stopping = Link(), threading.Event()
    link.branch_at = []  # type: ignore[attr-defined]
    report = link.merge_report

    def seen(incarnation: int, body: dict[str, Any]) -> dict[str, Any]:
        link.branch_at.append(run(repo.origin, "git", "rev-parse", "issue-1-x"))  # type: ignore[attr-defined]
        return report(incarnation, body)
    link.merge_report = seen  # type: ignore[method-assign]

    stop_when(lambda: any(c[:2] == ["pr", "checks"] for c in fake.calls()), stopping)
    runner = MergeRunner(link, "m1", lambda: {"app": repo.path}, tmp_path / "scratch",  # type: ignore[arg-type]
                         env, stopping, lambda: 1, checks_poll=30)
    started = time.monotonic()
    runner.execute({**job, "batch_id": "c1c2c3c4", "entries": [entry]}, 1)
    assert time.monotonic() - started < 20  # not a checks_poll's wait, nor the host's 30 s bound
    ahead, stopped = link.reports
    assert stopped["outcome"] == "retry" and stopped["reason"].startswith("host_stopped: m1"), stopped
    head = run(repo.origin, "git", "rev-parse", "issue-1-x")
    assert head != pin and stopped["tip"] == head and stopped["pr_number"] == 1
    # the push to the PR's head was reported first, while the branch was still at the pin: a kill -9 after the
    # push leaves the hub that tip, which the next run gets as prior_tip (without it, that run called it moved)
    assert (ahead["outcome"], ahead["tip"], link.branch_at[0]) == ("landing", head, pin)
    # the next run: the hub hands the entry back with the tip and the PR it recorded
    link2 = Link()
    MergeRunner(link2, "m2", lambda: {"app": repo.path}, tmp_path / "scratch2",  # type: ignore[arg-type]
                env, threading.Event(), lambda: 1, checks_poll=0.05).execute(
        {**job, "batch_id": "d1d2d3d4", "entries": [{**entry, "prior_tip": head, "pr_number": 1}]}, 1)
    # the head is taken as it is (not "moved"), and not pushed again (which ran the PR's CI again)
    assert [(r["outcome"], r.get("tip") or r.get("sha")) for r in link2.reports] == [("landing", head),
                                                                                    ("merged", head)], link2.reports
    assert [c[:3] for c in fake.calls() if c[:2] == ["pr", "merge"]] == [["pr", "merge", "1"]]
    assert len([c for c in fake.calls() if c[:2] == ["pr", "create"]]) == 1
    assert fake.item("acme/app", 1)["state"] == "MERGED"
