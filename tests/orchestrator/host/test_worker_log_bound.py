"""What a worker's output may take on the host's disk: claude's stdout (the raw log) and stderr go straight to files,
so past :attr:`Limits.raw_log_bytes` / :attr:`Limits.stderr_log_bytes` the host ends the attempt (``failed``,
``output_limit``), started or re-attached, its whole process group gone and the file hardly past its bound.

A run that ends well is played by the fake ``claude`` (tests/fakes/claude); one that prints without end by
:data:`FLOOD`, a stand-in on the worker's PATH that speaks enough stream-json for the host (an ``init``, a
``result`` on request) and then prints at a known rate, so the overshoot a tick allows is known too.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.worker import Context, Limits, Worker
from tests.orchestrator.host.conftest import FAST, Repo
from tests.orchestrator.host.fakehub import FakeHub
from tests.orchestrator.host.test_host import orphan

BOUND = 1 << 20  # bytes: the bound the tests give both files
RATE = 16 << 10  # bytes FLOOD writes every PERIOD seconds
PERIOD = 0.005
# what may pass the bound: an eighth more before SIGKILL, plus what a tick (FAST.tick) and a slow host let through
SLACK = BOUND // 8 + 64 * RATE
SMALL = Limits(**{**FAST.__dict__, "raw_log_bytes": BOUND, "stderr_log_bytes": BOUND})

# `flood: to=stdout|stderr trap=1 result=1 short=1 lines=N`, from the prompt (stdin, or the argument after -p);
# trap=1 ignores SIGTERM (only SIGKILL ends it); short=1 prints lines `x` (else of 1 KiB), N of them a period
# (default RATE // 2); a `sleep` child in its process group; their pids in $CLAUDE_CONFIG_DIR/flood.pids
FLOOD = r'''
import json, os, signal, subprocess, sys, time
from pathlib import Path

argv = sys.argv[1:]
i = argv.index("-p") + 1
prompt = argv[i] if i < len(argv) and not argv[i].startswith("-") else sys.stdin.read()
opts = dict(w.split("=", 1) for w in prompt.split("flood:", 1)[1].split() if "=" in w)
sid = argv[argv.index("--session-id") + 1]
signal.signal(signal.SIGTERM, signal.SIG_IGN if opts.get("trap") else lambda *_: os._exit(143))
print(json.dumps({"type": "system", "subtype": "init", "session_id": sid, "model": "claude-sonnet-4-5-20250929",
                  "cwd": os.getcwd(), "tools": ["Bash"], "claude_code_version": "2.1.283"}), flush=True)
if opts.get("result"):
    print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "Done.",
                      "session_id": sid, "num_turns": 1, "total_cost_usd": 0.01, "terminal_reason": "completed"}),
          flush=True)
child = subprocess.Popen(["sleep", "600"])
pids = Path(os.environ["CLAUDE_CONFIG_DIR"]) / "flood.pids"
pids.parent.mkdir(parents=True, exist_ok=True)
pids.write_text(f"{os.getpid()} {child.pid}")
out = sys.stderr if opts.get("to") == "stderr" else sys.stdout
block = ("x\n" * int(opts.get("lines", RATE // 2))) if opts.get("short") else ("x" * 1023 + "\n") * (RATE // 1024)
while True:
    out.write(block)
    out.flush()
    time.sleep(PERIOD)
'''


@pytest.fixture
def flood(claude_bin: Path, tmp_path: Path) -> Iterator[None]:
    """claude on the worker's PATH is :data:`FLOOD`; one a test left printing (a host that does not end it) is
    killed with its group afterwards."""
    launcher = claude_bin / "claude"
    launcher.write_text(f"#!{sys.executable}\nRATE, PERIOD = {RATE}, {PERIOD!r}\n{FLOOD}")
    launcher.chmod(0o755)
    yield
    try:
        pid = flood_pids(tmp_path)[0]
        running = str(launcher) in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return
    if running:
        os.killpg(pid, signal.SIGKILL)


def group_gone(pgid: int, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def flood_pids(tmp_path: Path) -> list[int]:
    return [int(p) for p in (tmp_path / "claude-config" / "flood.pids").read_text().split()]


def ended(w: Worker, timeout: float = 20.0) -> None:
    assert w.finished.wait(timeout), "the host did not end a worker printing without end"


@pytest.mark.parametrize("to", ["stdout", "stderr"])
def test_a_worker_printing_without_end_is_ended_and_failed(to: str, flood: None, make_ctx: Callable[..., Context],
                                                           run_worker: Callable[..., Worker], fake_hub: FakeHub,
                                                           tmp_path: Path) -> None:
    w = run_worker(make_ctx(SMALL), wait=False, briefing=f"flood: to={to}")
    ended(w)
    final = fake_hub.final("a1b2c3d4")
    name = "stream.1.jsonl" if to == "stdout" else "stderr.1.log"
    assert final["state"] == "failed", final
    assert final["reason"].startswith(f"output_limit: output over {BOUND} bytes on claude's {to} ({name}: "), final
    assert w.exit_code == 143  # SIGTERM, as a watchdog ends it
    assert w.process.pgid is not None and group_gone(w.process.pgid)  # its sleep child too
    size = (w.dir / name).stat().st_size
    assert BOUND < size <= BOUND + SLACK
    assert f"[kill] output_limit: output over {BOUND} bytes" in fake_hub.assignments["a1b2c3d4"].log


def test_short_lines_fill_the_human_log_no_further_than_the_bound(
        flood: None, make_ctx: Callable[..., Context], run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    # each line `x` becomes `HH:MM:SS [text] x` in the human log: nine times the raw log, which stays small. 256
    # lines a period (51,200 a second), which the host parses as they come: at 8,192 a period it fell behind on a
    # busy machine and the raw log reached its bound first
    w = run_worker(make_ctx(SMALL), wait=False, briefing="flood: short=1 lines=256")
    ended(w)
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed" and final["reason"].startswith(
        f"output_limit: output over {BOUND} bytes on the human log (human.1.log: "), final
    assert (w.dir / "stream.1.jsonl").stat().st_size < BOUND
    assert (w.dir / "human.1.log").stat().st_size <= BOUND + 9 * SLACK  # a chunk of lines is written at once


def test_output_after_a_result_still_fails_the_attempt(flood: None, make_ctx: Callable[..., Context],
                                                       run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    w = run_worker(make_ctx(SMALL), wait=False, briefing="flood: result=1")
    ended(w)
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed" and final["reason"].startswith("output_limit: "), final


def test_one_that_ignores_sigterm_gets_sigkill_without_waiting_out_the_grace(
        flood: None, make_ctx: Callable[..., Context], run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    limits = Limits(**{**SMALL.__dict__, "stop_grace": 60.0})
    w = run_worker(make_ctx(limits), wait=False, briefing="flood: trap=1")
    ended(w)  # well before the 60 s grace
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed" and final["reason"].startswith("output_limit: "), final
    assert w.exit_code == -signal.SIGKILL
    assert w.process.pgid is not None and group_gone(w.process.pgid)
    assert (w.dir / "stream.1.jsonl").stat().st_size <= BOUND + SLACK


def test_a_reattached_worker_printing_without_end_is_ended_too(flood: None, make_ctx: Callable[..., Context],
                                                               fake_hub: FakeHub, repo: Repo,
                                                               host_env: dict[str, str], tmp_path: Path) -> None:
    ctx = make_ctx(SMALL)
    fake_hub.dispatched("0000000e")
    rec = orphan(ctx, repo, host_env, "0000000e", "flood: to=stdout", tmp_path)
    try:
        # the host is down while it prints: the raw log is past its bound when the next host re-attaches
        deadline = time.time() + 10
        while Path(rec["raw_log"]).stat().st_size <= BOUND and time.time() < deadline:
            time.sleep(0.05)
        w = Worker(ctx, Dispatch.parse(rec["payload"]))
        record = ctx.state.get("0000000e")
        assert record is not None
        w.reattach(record)
        ended(w)
        assert rec["proc"].wait(10) == 143
    finally:
        if rec["proc"].poll() is None:
            os.killpg(rec["proc"].pid, signal.SIGKILL)
            rec["proc"].wait(10)
    final = fake_hub.final("0000000e")
    assert final["state"] == "failed" and final["reason"].startswith(
        f"output_limit: output over {BOUND} bytes on claude's stdout (stream.1.jsonl: "), final
    assert group_gone(rec["proc"].pid)
    assert flood_pids(tmp_path)[0] == rec["proc"].pid
    assert Path(rec["raw_log"]).stat().st_size <= BOUND + SLACK


def test_the_fake_claudes_huge_line_past_the_bound_fails_the_attempt(make_ctx: Callable[..., Context],
                                                                     run_worker: Callable[..., Worker],
                                                                     fake_hub: FakeHub) -> None:
    # the fake prints a 2 MiB tool result, then pauses `step` seconds: the host sees it past the bound while it
    # runs (by less than an eighth: SIGTERM, which the fake obeys)
    bound = (2 << 20) - (64 << 10)
    w = run_worker(make_ctx(Limits(**{**FAST.__dict__, "raw_log_bytes": bound})), briefing="fake: huge step=1")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed" and final["reason"].startswith(
        f"output_limit: output over {bound} bytes on claude's stdout"), final
    assert w.exit_code == 143
    assert w.supervisor.raw_offset == bound  # read no further than the bound


def test_a_normal_worker_within_the_bounds_is_unaffected(make_ctx: Callable[..., Context],
                                                         run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    # bounds just above what this run prints: the stream and stderr files are checked, and not held against it
    limits = Limits(**{**FAST.__dict__, "raw_log_bytes": 3 << 20, "stderr_log_bytes": 1})
    w = run_worker(make_ctx(limits), briefing="fake: huge")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "done", final
    assert w.kill_reason is None
    assert (w.dir / "stream.1.jsonl").stat().st_size > 2 << 20


def test_the_bounds_come_from_coordinator_yml(tmp_path: Path) -> None:
    """``workers.stdout_log_mib`` / ``stderr_log_mib`` (whole MiB, at least 1) set the host's bounds; a value the
    config refuses names its key path, and without them the defaults hold."""
    from coordhub.cli.agent import _host_config
    from coordhub.core import orchestrator_config as cfg

    text = ("repos:\n  - name: app\nmachines:\n  - name: m1\n    repos: [app]\n"
            "workers:\n  stdout_log_mib: 2\n  stderr_log_mib: 1\n")
    config = cfg.parse_yaml(text).model_dump(mode="json")
    _, limits = _host_config(config, "m1", None, {}, 1.0, 1.0, (None, None, None, 30.0, 10.0))
    assert (limits.raw_log_bytes, limits.stderr_log_bytes) == (2 << 20, 1 << 20)
    config["workers"] = {}
    _, limits = _host_config(config, "m1", None, {}, 1.0, 1.0, (None, None, None, 30.0, 10.0))
    assert (limits.raw_log_bytes, limits.stderr_log_bytes) == (512 << 20, 64 << 20)
    with pytest.raises(cfg.ConfigError) as refused:
        cfg.parse_yaml(text.replace("stdout_log_mib: 2", "stdout_log_mib: 0"))
    assert "workers.stdout_log_mib" in str(refused.value)
