"""The whole pipeline on the PostgreSQL backend (issue 12): a real ``coord serve --database-url`` on a private
database of the test server (dropped after), real ``coord agent`` hosts, real git with a bare origin, the fake
``claude``. A red smoke test is fixed, the gates run again from the first, the review (with ``reviews.model``)
approves, and the merge queue lands the branch on ``main``."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveHub, scratch_database
from tests.orchestrator.host.conftest import claude_bin, make_repo, run  # noqa: F401 (a fixture)
from tests.orchestrator.host.test_agent_e2e import Fleet
from tests.orchestrator.host.test_pipeline_e2e import apply, settle, stages_of

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_fleet(tmp_path: Path, claude_bin: Path) -> Iterator[Fleet]:  # noqa: F811
    with scratch_database("coordhub_pipeline") as url:
        hub = LiveHub(tmp_path / "hub", args=("--database-url", url))
        f: Fleet | None = None
        try:
            hub.start(wait=False)
            hub.wait_ready(timeout=90)
            f = Fleet(hub, tmp_path, claude_bin, make_repo(tmp_path, "app"), ["m1", "m2"])
            yield f
        finally:
            for a in f.agents if f else []:
                a.stop(signal.SIGKILL if a.proc.poll() is None else 0)
            for r in f.runs() if f else []:
                try:
                    os.killpg(r["pgid"], signal.SIGKILL)
                except OSError:
                    pass
            hub.stop()


def test_the_pipeline_end_to_end_on_postgresql(pg_fleet: Fleet) -> None:
    f = pg_fleet
    check = 'n=$(git rev-list --count origin/main..HEAD); echo "commits on the branch: $n"; test "$n" -ge 2'
    apply(f, repos=[{"name": "app", "default_branch": "main", "test_command": check}],
          smoke_tests={"auto_queue": True, "timeout_seconds": 60},
          reviews={"enabled": True, "model": "claude-haiku-4-5"},
          pipeline={"stages": ["test", "review", "merge"], "max_fix_rounds": 2},
          merge={"gate_command": "test -f pg5.txt", "tick_seconds": 0})
    f.start("m1")
    f.start("m2")
    base = run(f.repo.origin, "git", "rev-parse", "main")
    aid = f.assign(5, "fake: success file=pg5.txt", machine="m1")
    v = merged(f, aid)
    assert v["stage"] == "merged", v
    assert [(r["stage"], r["state"]) for r in v["runs"]] == [("test", "failed"), ("test", "passed"),
                                                             ("review", "passed")]
    assert v["runs"][-1]["model"] == "claude-haiku-4-5"
    a = f.get(aid)
    assert [t["model"] for t in a["attempts"]] == ["sonnet", "opus"] and a["fix_round"] == 1
    main = run(f.repo.origin, "git", "rev-parse", "main")
    assert main != base and "pg5.txt" in run(f.repo.origin, "git", "ls-tree", "-r", "--name-only", "main")


def merged(f: Fleet, aid: str, timeout: float = 240.0) -> dict[str, Any]:
    """The assignment's stages once it settled past the merge stage (merged, or stopped for a human)."""
    deadline = time.time() + timeout
    v = settle(f, aid, timeout=timeout)
    while v["stage"] == "merge" and time.time() < deadline:
        time.sleep(0.2)
        v = stages_of(f, aid)
    return v
