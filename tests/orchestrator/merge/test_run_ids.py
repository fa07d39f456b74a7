"""The id of a merge run names the host's scratch worktree: one that climbs out of the scratch directory is
refused, and nothing outside it is ever removed.

The runner removed whatever stood at ``<scratch>/merge-<batch id>`` before adding its worktree (a leftover of
a run that died), with ``shutil.rmtree`` when git did not know it as a worktree. A batch id of
``z/../../victim`` then named a directory outside (``merge-z`` need only exist: a stage run's id made it), and
the runner deleted it. The hub makes batch ids of hex digits, so only a buggy or hostile hub sends one.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from coordhub.orchestrator.merging import MergeRunner
from tests.orchestrator.host.conftest import make_repo


class Link:
    """Records the merge reports (the hub's side is not under test)."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []

    def merge_report(self, incarnation: int, body: dict[str, Any]) -> dict[str, Any]:
        self.reports.append(body)
        return {"outcome": body["outcome"], "entries": []}


def test_a_batch_id_that_climbs_out_of_the_scratch_directory_removes_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    scratch = tmp_path / "host" / "worktrees"
    (scratch / "merge-z").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("the user's files")
    link = Link()
    runner = MergeRunner(link, "m1", lambda: {"app": repo.path}, scratch, {"PATH": "/usr/bin:/bin"},  # type: ignore[arg-type]
                         threading.Event(), lambda: 1)
    runner.execute({"batch_id": "z/../../../victim", "repo": "app", "target": "main", "method": "rebase",
                    "entries": []}, 1)
    assert (victim / "precious.txt").exists()
    assert link.reports and link.reports[0]["outcome"] == "error", link.reports
