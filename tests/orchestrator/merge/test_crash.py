"""kill -9 of the host and of the hub in the middle of a merge: the queue continues, nothing merges twice, no
branch is lost (issue 12 "Show it"). Real ``coord serve``, real ``coord agent``, a bare origin."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.orchestrator.host.conftest import run
from tests.orchestrator.merge.conftest import MergeFleet


def _wait_for(path: Path, lines: int = 1, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not (path.exists() and len(path.read_text().splitlines()) >= lines):
        assert time.time() < deadline, f"{path} never got {lines} line(s)"
        time.sleep(0.05)


def test_kill_9_of_the_host_during_the_gate_and_during_the_push(mfleet: MergeFleet, tmp_path: Path) -> None:
    gate = tmp_path / "gate.log"
    pushed = tmp_path / "push.log"
    mfleet.set_merge(gate_command=f"echo run >> {gate}; sleep 2")
    hook = mfleet.repo.origin / "hooks" / "pre-receive"  # a slow push to main: the second kill lands inside it
    hook.write_text(f"#!/bin/sh\nwhile read old new ref; do\n  if [ \"$ref\" = refs/heads/main ]; then\n"
                    f"    echo \"$new\" >> {pushed}; sleep 2\n  fi\ndone\n")
    hook.chmod(0o755)
    agent = mfleet.start("m1")
    ids = mfleet.done([20], lambda n: "fake: success file=c20.txt")
    branch_head = run(mfleet.repo.origin, "git", "rev-parse", mfleet.get(ids[0])["branch"])
    before = len(mfleet.main_subjects())
    (entry,) = mfleet.enter(ids)["entered"]
    _wait_for(gate)
    agent.stop(signal.SIGKILL)  # 1: mid-gate, nothing recorded
    agent = mfleet.start("m1")
    _wait_for(pushed)  # 2: the tip was recorded (landing) and the push to main is in flight
    agent.stop(signal.SIGKILL)
    mfleet.start("m1")
    e = mfleet.wait_entry(entry, ("merged", "needs_input"), timeout=120)
    assert e["state"] == "merged", e
    assert e["attempt"] >= 3 and e["merged_sha"] == run(mfleet.repo.origin, "git", "rev-parse", "main")
    subjects = mfleet.main_subjects()
    assert len(subjects) == before + 1 and mfleet.main_files().count("c20.txt") == 1
    # no branch lost: the worker's branch is still on origin, at the commit it was pushed at
    assert run(mfleet.repo.origin, "git", "rev-parse", mfleet.get(ids[0])["branch"]) == branch_head
    assert len(gate.read_text().splitlines()) >= 2


def test_kill_9_of_the_hub_mid_merge(mfleet: MergeFleet, tmp_path: Path) -> None:
    gate = tmp_path / "gate.log"
    mfleet.set_merge(gate_command=f"echo run >> {gate}; sleep 3")
    mfleet.start("m1")
    ids = mfleet.done([21, 22], lambda n: f"fake: success file=h{n}.txt")
    before = len(mfleet.main_subjects())
    first, second = mfleet.enter(ids)["entered"]
    _wait_for(gate)
    assert mfleet.hub.stop(signal.SIGKILL) == -signal.SIGKILL
    mfleet.hub.start()
    finals = [mfleet.wait_entry(e, ("merged", "needs_input"), timeout=120) for e in (first, second)]
    assert [e["state"] for e in finals] == ["merged", "merged"], finals
    assert finals[0]["attempt"] == 1  # the host waited for the hub and finished the same run
    assert len(mfleet.main_subjects()) == before + 2
    assert [f for f in mfleet.main_files() if f.startswith("h")] == ["h21.txt", "h22.txt"]
