"""Issue 7 point 19, end to end: real ``coord`` subprocesses against a real ``coord serve``.

``--json`` answers JSON even when refused; a closed stdout ends a command
quietly; ``watch --notify`` without ``notify-send`` says so once; a CLI command
counts as its session's presence; ``msg read`` takes several ids or ``--all``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordhub.cli.entry import EXIT_BROKEN_PIPE
from tests.conftest import LiveHub, free_port
from tests.coordcli import Coord, isolated_env

A = "DESKTOP-0O8A1RL/claude-main"
B = "HOWARD-HOME/claude-main"
UNKNOWN_UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


@pytest.fixture
def cli(live_hub: LiveHub, tmp_path: Path) -> tuple[Coord, Coord, Coord]:
    """CLIs acting as the admin, session A and session B."""
    work = tmp_path / "work"
    work.mkdir()
    base = Coord(work, isolated_env(tmp_path), url=live_hub.url)
    return base.as_token(live_hub.admin_token), base.as_token(live_hub.token(A)), base.as_token(live_hub.token(B))


# ---- --json means JSON, errors included ----------------------------------------------------------

def test_a_refusal_with_json_prints_the_hubs_envelope_and_keeps_the_exit_code(
        cli: tuple[Coord, Coord, Coord]) -> None:
    _, a, b = cli
    lease = a.json("lock", "claim", "proj", "src/", "work")
    r = b("lock", "claim", "proj", "src/x.py", "mine", "--json")
    assert r.code == 4
    error = r.json()["error"]
    assert error["code"] == "lease_conflict" and error["status"] == 409
    assert lease["id"] in str(error) and A in str(error)  # the hub's own details (the holder) are kept
    assert r.err.startswith("coord: ") and len(r.err.strip().splitlines()) == 1

    r = a("lock", "release", UNKNOWN_UUID, "--json")
    assert r.code == 1 and r.json()["error"]["code"] == "not_found"

    r = a("msg", "inbox", "--json")  # a success is still plain JSON
    assert r.code == 0 and r.json() == []


def test_without_json_a_refusal_prints_nothing_on_stdout(cli: tuple[Coord, Coord, Coord]) -> None:
    _, a, _ = cli
    r = a("lock", "release", UNKNOWN_UUID)
    assert r.code == 1 and r.out == ""


def test_an_unreachable_hub_with_json_is_an_envelope_too(tmp_path: Path) -> None:
    down = Coord(tmp_path, isolated_env(tmp_path), url=f"http://127.0.0.1:{free_port()}", token="x")
    r = down("lock", "list", "--json")
    assert r.code == 3
    assert r.json()["error"]["code"] == "unreachable" and "unreachable" in r.json()["error"]["message"]


@pytest.mark.parametrize("args", [("msg", "send", "ALL", "hello", "body"), ("todo", "add", "a todo")])
def test_a_write_queued_with_json_prints_json(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Review: a write queued while the hub was unreachable printed its sentence on stdout, where a script given
    --json reads JSON."""
    down = Coord(tmp_path, isolated_env(tmp_path), url=f"http://127.0.0.1:{free_port()}", token="x")
    r = down(*args, "--json")
    assert r.code == 0, r
    out = r.json()
    assert out["queued"] is True and out["method"] == "POST" and out["pending"] == 1 and out["idempotency_key"], out
    assert "queued in" in r.err


# ---- a closed stdout ---------------------------------------------------------------------------------

def _with_closed_stdout(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run ``cmd`` with stdout a pipe whose reader has already gone (as ``| head -1`` ends up)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        p = subprocess.run(cmd, stdout=write_end, stderr=subprocess.PIPE, env=env, cwd=cwd, timeout=60,
                           stdin=subprocess.DEVNULL)
    finally:
        os.close(write_end)
    return p.returncode, p.stderr.decode()


@pytest.mark.parametrize("args", [("msg", "inbox"), ("msg", "inbox", "--json"), ("lock", "list", "--json"),
                                  ("status",), ("--version",)])
def test_a_closed_stdout_ends_quietly(cli: tuple[Coord, Coord, Coord], live_hub: LiveHub,
                                      args: tuple[str, ...]) -> None:
    """Buffered stdout, as a user's shell has it: the output reaches the closed pipe only at exit."""
    admin, a, b = cli
    b.ok("msg", "send", A, "hello", "a body")
    a.ok("lock", "claim", "proj", "src/", "work")
    cmd = [sys.executable, "-m", "coordhub", "--url", live_hub.url, "--token", str(a.token), *args]
    env = {k: v for k, v in a.env.items() if k != "PYTHONUNBUFFERED"}
    code, err = _with_closed_stdout(cmd, env, a.cwd)
    assert (code, err) == (EXIT_BROKEN_PIPE, "")


# ---- watch --notify without notify-send -------------------------------------------------------------

def test_watch_notify_without_notify_send_warns_once(cli: tuple[Coord, Coord, Coord], live_hub: LiveHub) -> None:
    _, a, b = cli
    env = {**a.env, "PATH": str(Path(sys.executable).parent)}  # no notify-send anywhere on it
    watcher = subprocess.Popen([sys.executable, "-m", "coordhub", "--url", live_hub.url, "--token", str(a.token),
                                "watch", "--notify"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               cwd=a.cwd, text=True)
    try:
        time.sleep(3)  # the stream is open (events after it are shown)
        b.ok("msg", "send", A, "first", "x")
        b.ok("msg", "send", A, "second", "y")
        deadline = time.monotonic() + 30
        out = ""
        assert watcher.stdout is not None
        while "second" not in out and time.monotonic() < deadline:
            out += watcher.stdout.readline()
    finally:
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=20)
    assert "first" in out and "second" in out
    warnings = [line for line in err.splitlines() if "notify-send" in line]
    assert len(warnings) == 1 and warnings[0].startswith("coord: warning:"), err


# ---- presence counts CLI activity ----------------------------------------------------------------

def test_a_cli_command_counts_as_its_sessions_presence(cli: tuple[Coord, Coord, Coord]) -> None:
    admin, a, b = cli
    assert admin.json("presence") == []
    a.ok("msg", "inbox")  # a read
    b.ok("todo", "add", "write the docs")  # a write
    rows = {r["session_id"]: r for r in admin.json("presence")}
    assert set(rows) == {A, B}
    assert all(r["state"] == "active" and r["incarnation"] == 1 for r in rows.values())
    a.ok("lock", "list")  # more activity keeps the same incarnation
    assert {r["session_id"]: r["incarnation"] for r in admin.json("presence")} == {A: 1, B: 1}


# ---- msg read: several ids, --all --------------------------------------------------------------------

def test_msg_read_takes_several_ids_or_all(cli: tuple[Coord, Coord, Coord]) -> None:
    _, a, b = cli
    ids = [b.json("msg", "send", A, f"note {i}", "body")["id"] for i in range(4)]
    done = a.json("msg", "read", ids[0], ids[1])
    assert [m["id"] for m in done] == ids[:2]
    assert sorted(m["id"] for m in a.json("msg", "inbox")) == sorted(ids[2:])
    r = a.ok("msg", "read", "--all")
    assert sorted(r.out.split()) == sorted(["read", "read", *ids[2:]])
    assert a.json("msg", "inbox") == []
    assert a.ok("msg", "read", "--all").out.strip() == "no unread messages"
    a.fails(2, "msg", "read")  # neither ids nor --all
    a.fails(2, "msg", "read", ids[0], "--all")
