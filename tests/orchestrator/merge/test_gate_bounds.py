"""The merge gate runs the branch's own code: its output is held to a bounded tail, and its end is its main
process's exit, not the end of its output pipe.

A gate is whatever the branch under merge says (``make test``; a prompt-injected worker wrote it). The host
read all it printed into memory before keeping the last :data:`~coordhub.orchestrator.merging.OUTPUT_TAIL`
characters (a test that loops printing grew the agent without bound), and it waited for its stdout to close:
a background process the gate left behind held the pipe, so a gate that passed was reported as timed out,
and one that left a process in a session of its own (``setsid``) hung the merge runner for good.
"""

from __future__ import annotations

import os
import signal
import threading
import tracemalloc
from pathlib import Path
from typing import Any

from coordhub.orchestrator.merging import OUTPUT_TAIL, MergeRunner


def _runner(tmp_path: Path) -> MergeRunner:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    return MergeRunner(None, "laptop", lambda: {}, tmp_path, env, threading.Event(),  # type: ignore[arg-type]
                       lambda: 1)


def _kill(pidfile: Path) -> None:
    try:
        os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


def test_a_gate_that_prints_without_end_is_held_to_its_tail(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    size = 200 * 1024 * 1024  # what it prints: 200 MiB of 'x' in lines, then fails
    tracemalloc.start()
    try:
        got = runner._gate({"batch_id": "c1c2c3c4",
                            "gate_command": f"head -c {size} /dev/zero | tr '\\0' x | fold -w 1000; exit 3",
                            "gate_timeout_seconds": 600}, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got is not None and got["evidence"]["exit_code"] == 3
    assert 0 < len(got["evidence"]["output"]) <= OUTPUT_TAIL
    assert peak < 32 * 1024 * 1024, f"the host held {peak >> 20} MiB of the gate's output"


def _gate_in_thread(runner: MergeRunner, run: dict[str, Any], wt: Path) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []
    t = threading.Thread(target=lambda: box.append(runner._gate(run, wt)), daemon=True)
    t.start()
    return t, box


def test_a_gate_that_passed_but_left_a_process_behind_is_green(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    # the leftover holds the gate's output open far longer than the gate's timeout
    run = {"batch_id": "c1c2c3c4",
           "gate_command": f"sleep 3600 & echo $! > {pidfile}; echo tests passed; exit 0", "gate_timeout_seconds": 5}
    try:
        t, box = _gate_in_thread(_runner(tmp_path), run, tmp_path)
        t.join(120)
        assert not t.is_alive()
        assert box == [None], box  # green: the gate exited 0 (not "timed out" after 5 s)
    finally:
        _kill(pidfile)


def test_a_gate_that_left_a_process_in_its_own_session_does_not_hang_the_runner(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    run = {"batch_id": "c1c2c3c4",
           "gate_command": f"setsid sleep 3600 & echo $! > {pidfile}; exit 1", "gate_timeout_seconds": 2}
    try:
        t, box = _gate_in_thread(_runner(tmp_path), run, tmp_path)
        t.join(120)  # the old runner waited for the pipe to close: an hour here, for ever for a daemon
        assert not t.is_alive(), "the merge runner hangs on a gate's leftover process"
        assert box and box[0] is not None and box[0]["evidence"]["exit_code"] == 1
    finally:
        _kill(pidfile)
