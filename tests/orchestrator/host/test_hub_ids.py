"""Ids the hub hands a host become names of files and directories on the host: one that is ``.`` or ``..``
is refused, never used.

An assignment id is a directory name twice (its worktree under the host's worktrees, its logs under the
host's workers); the hub makes them of hex digits, and the host checked their characters, which let ``..``
through: the worktree path was then the host's own state directory, which ``worktree.create`` took for a
leftover worktree and removed (``shutil.rmtree``), with the state file and every other worker's worktree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.worker import Context
from tests.orchestrator.host.conftest import payload


@pytest.mark.parametrize("aid", [".", ".."])
def test_an_assignment_id_that_names_a_directory_above_is_refused(aid: str) -> None:
    with pytest.raises(ValueError, match="id"):
        Dispatch.parse(payload(aid=aid))


def test_a_dispatch_of_id_dot_dot_leaves_the_host_state_alone(make_ctx: Callable[..., Context],
                                                              tmp_path: Path) -> None:
    from coordhub.orchestrator.host import Host, HostConfig

    ctx = make_ctx()
    ctx.worktrees.mkdir(parents=True, exist_ok=True)
    ctx.state.put("other", phase="running", worktree=str(ctx.worktrees / "other"))
    keep = ctx.worktrees / "other" / "work.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("another worker's uncommitted work")
    host = Host(HostConfig("m1", 2, dict(ctx.repos)), ctx)
    w = host.take(payload(aid=".."))
    if w is not None:
        assert w.finished.wait(60)
    assert keep.exists() and ctx.state.path.exists()


def test_a_stage_run_id_that_climbs_out_makes_nothing_outside_the_host(make_ctx: Callable[..., Context],
                                                                      tmp_path: Path) -> None:
    """A stage run's id names its worktree and output directory: ``a/../../../outside`` made directories
    outside the host's (the first step to a merge run's id removing one, tests/orchestrator/merge/test_run_ids.py)."""
    from coordhub.orchestrator import runs

    ctx = make_ctx()
    body = runs.execute(ctx, {"id": "a/../../../outside", "attempt": 1, "repo": "app", "stage": "test",
                              "branch": "main", "command": "true"})
    assert body is not None and body["state"] == "error" and "not an id" in body["reason"]
    assert not (tmp_path / "outside").exists()


@pytest.mark.parametrize("sid", ["--dangerously-skip-permissions", "-x", "abc", "1" * 101])
def test_a_resume_of_a_session_id_that_is_not_a_uuid_is_refused(sid: str) -> None:
    # the id comes from a worker's telemetry (forgeable) and becomes `claude -p --resume <id>`: a flag there would
    # be read as one
    body = payload(resume={"session_id": sid, "guidance": "go on"})
    with pytest.raises(ValueError, match="session_id"):
        Dispatch.parse(body)


def test_a_resume_of_a_uuid_keeps_it() -> None:
    sid = "11111111-2222-4333-8444-555555555555"
    d = Dispatch.parse(payload(resume={"session_id": sid.upper(), "guidance": "go on"}))
    assert d.resume is not None and d.resume.session_id == sid and d.resume.guidance == "go on"
