"""What a command's output may take on the host's disk (:func:`coordhub.orchestrator.smoke.run_command`, which runs
smoke tests, merge gates and reviewers): past a limit its file keeps the head, a marker and the true end; a
process left holding the pipe neither holds the run nor writes on after it. Real commands, a small limit."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from coordhub.orchestrator import smoke

LIMIT = 64 << 10  # bytes; the host's is smoke.OUTPUT_LIMIT
KEEP = LIMIT // 2  # what run_command keeps of the end at this limit
MARKER = 200  # bytes the marker line may add
ENV = {"PATH": "/usr/bin:/bin"}


def seq(first: int, last: int) -> bytes:
    return subprocess.run(["seq", str(first), str(last)], capture_output=True, check=True).stdout


def test_an_output_over_the_limit_keeps_its_head_a_marker_and_its_true_end(tmp_path: Path) -> None:
    printed = seq(1, 200_000)  # 1.3 MB
    ended = smoke.run_command("seq 1 200000; exit 3", tmp_path, ENV, 30, tmp_path / "out.log", threading.Event(),
                              limit=LIMIT)
    kept = (tmp_path / "out.log").read_bytes()
    assert (ended.exit_code, ended.killed) == (3, None)
    assert LIMIT < len(kept) <= LIMIT + MARKER
    assert kept.startswith(printed[:LIMIT - KEEP]) and kept.endswith(printed[-KEEP:])
    assert f"[coordhub] {len(printed) - LIMIT} bytes of output left out here" in kept[LIMIT - KEEP:-KEEP].decode()
    assert ended.tail == printed[-smoke.TAIL_BYTES:].decode()


def test_stdout_and_stderr_apart_are_bounded_each_and_stdin_still_reaches_the_command(tmp_path: Path) -> None:
    given = seq(1, 100_000)
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    ended = smoke.run_command("cat; seq 100001 200000 >&2", tmp_path, ENV, 30, out, threading.Event(),
                              err_path=err, stdin_text=given.decode(), limit=LIMIT)
    assert ended.exit_code == 0
    for path, printed in ((out, given), (err, seq(100_001, 200_000))):
        kept = path.read_bytes()
        assert len(kept) <= LIMIT + MARKER and kept.startswith(printed[:LIMIT - KEEP])
        assert kept.endswith(printed[-KEEP:])
    assert ended.tail == given[-smoke.TAIL_BYTES:].decode()  # the tail is stdout's alone


def test_an_output_under_the_limit_is_the_file_whole_with_the_mode_open_gives(tmp_path: Path) -> None:
    out = tmp_path / "new.log"
    ended = smoke.run_command("echo one; echo two >&2", tmp_path, ENV, 10, out, threading.Event(), limit=LIMIT)
    assert out.read_bytes() == b"one\ntwo\n" and ended.tail == "one\ntwo\n"  # stderr interleaved
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    gate = tmp_path / "gate.log"  # the merge gate's file comes from mkstemp: 0600, and stays so
    gate.touch(mode=0o600)
    smoke.run_command("echo gate", tmp_path, ENV, 10, gate, threading.Event(), limit=LIMIT)
    assert gate.stat().st_mode & 0o777 == 0o600 and gate.read_bytes() == b"gate\n"


def test_a_command_printing_until_its_timeout_stays_bounded(tmp_path: Path) -> None:
    out = tmp_path / "out.log"
    ended = smoke.run_command('i=0; while :; do i=$((i+1)); echo "line $i"; done', tmp_path, ENV, 1, out,
                              threading.Event(), grace=1, limit=LIMIT)
    assert (ended.exit_code, ended.killed) == (smoke.TIMEOUT_EXIT, "timeout")
    kept = out.read_bytes()
    assert len(kept) <= LIMIT + MARKER and kept.startswith(b"line 1\nline 2\n") and b"bytes of output left out" in kept
    numbers = [int(n) for n in re.findall(rb"^line (\d+)$", kept, re.MULTILINE)]
    assert numbers[-1] == max(numbers) > 10_000  # the end kept is the last printed
    assert ended.tail.endswith("[coordhub] killed after 1 s (smoke_tests.timeout_seconds)\n")
    assert f"line {numbers[-1]}\n" in ended.tail


def test_a_process_left_holding_the_pipe_neither_holds_the_run_nor_writes_on(tmp_path: Path) -> None:
    """The command exits 0 leaving a printer that left its process group (so the group kill misses it): the run
    ends ``drain`` seconds later and the file stops growing."""
    pid_file = tmp_path / "printer.pid"
    printer = ("import os, sys, time\nos.setsid()\nwith open(sys.argv[1], 'w') as f:\n    f.write(str(os.getpid()))\n"
               "while True:\n    os.write(1, b'tick\\n' * 1000)\n    time.sleep(0.01)\n")
    command = (f"{shlex.quote(sys.executable)} -c {shlex.quote(printer)} {shlex.quote(str(pid_file))} & "
               f"while [ ! -s {shlex.quote(str(pid_file))} ]; do sleep 0.01; done; exit 0")
    out = tmp_path / "out.log"
    try:
        ended = smoke.run_command(command, tmp_path, ENV, 30, out, threading.Event(), limit=LIMIT, drain=0.5)
        assert (ended.exit_code, ended.killed) == (0, None) and ended.seconds < 5
        size = out.stat().st_size
        time.sleep(0.5)
        assert out.stat().st_size == size <= LIMIT + MARKER
    finally:
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass  # gone by itself: its writes to the closed pipe failed


def test_what_the_command_leaves_in_its_group_is_killed_not_waited_for(tmp_path: Path) -> None:
    ended = smoke.run_command("while :; do echo x; sleep 0.01; done & sleep 0.2; exit 0", tmp_path, ENV, 30,
                              tmp_path / "out.log", threading.Event(), limit=LIMIT, drain=20)
    assert (ended.exit_code, ended.killed) == (0, None) and ended.seconds < 5  # the pipe closed with the group


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_ends_the_writing_not_the_run() -> None:
    with open("/dev/full", "wb", buffering=0) as f:
        sink = smoke._Capped(f.fileno(), 100, 50)
        sink.write(b"x" * 300)  # ENOSPC: no exception
        sink.close()
    assert sink.failed
