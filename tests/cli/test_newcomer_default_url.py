"""A command that asked the default hub URL says so.

A newcomer runs the hub on a port of their own and opens a second shell
without ``COORD_URL``: each command there asks ``http://127.0.0.1:8001`` and
answered only that it is unreachable, that the token may not go there, or that
a write was queued for it (exit 0), never why that URL was asked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port
from tests.coordcli import isolated_env

HINT = "(no hub URL is set, so the default was asked: name yours with --url or COORD_URL)"


def _coord(tmp_path: Path, default_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``coord ARGS`` as the console script runs it (fast path included), with the default port moved to a free one."""
    code = ("import sys, coordhub.config as c; c.DEFAULT_PORT = int(sys.argv[1]); sys.argv[1:2] = []; "
            "from coordhub.cli.entry import main; main()")
    return subprocess.run([sys.executable, "-c", code, str(default_port), *args], cwd=tmp_path,
                          env=isolated_env(tmp_path), capture_output=True, text=True, timeout=90,
                          stdin=subprocess.DEVNULL)


def test_unreachable_default_hub_says_it_was_the_default(tmp_path: Path) -> None:
    port = free_port()
    for args in (("status",), ("msg", "inbox")):  # the Typer CLI, the fast path
        p = _coord(tmp_path, port, "--token", "coord_x", *args)
        assert p.returncode == 3 and f"127.0.0.1:{port} is unreachable" in p.stderr and HINT in p.stderr, p
    p = _coord(tmp_path, port, "--token", "coord_x", "msg", "send", "ALL", "hello", "queued for the default")
    assert p.returncode == 0 and "queued" in p.stdout and (p.stdout + p.stderr).count(HINT) == 1, p


def test_sync_with_the_default_hub_unreachable_says_it_was_the_default_once(tmp_path: Path) -> None:
    """Review: `coord sync` said only that 127.0.0.1:8001 was unreachable; the hint is shown once per command."""
    port = free_port()
    for _ in range(2):  # two writes queued: each command says it once, and sync once for both
        p = _coord(tmp_path, port, "--token", "coord_x", "todo", "add", "queued for the default")
        assert p.returncode == 0 and (p.stdout + p.stderr).count(HINT) == 1, p
    p = _coord(tmp_path, port, "--token", "coord_x", "sync")
    assert p.returncode == 3 and "2 queued write(s) stay" in p.stderr and (p.stdout + p.stderr).count(HINT) == 1, p


def test_a_token_refused_for_the_default_url_says_it_was_the_default(tmp_path: Path) -> None:
    port, elsewhere = free_port(), f"http://127.0.0.1:{free_port()}"
    _coord(tmp_path, port, "--url", elsewhere, "--token", "coord_x", "status")  # the token's first URL
    for args in (("status",), ("msg", "inbox")):
        p = _coord(tmp_path, port, "--token", "coord_x", *args)
        assert p.returncode == 6 and f"it is used with {elsewhere}" in p.stderr and HINT in p.stderr, p
    p = _coord(tmp_path, port, "--url", f"http://127.0.0.1:{port}", "--token", "coord_x", "status")
    assert p.returncode == 6 and HINT not in p.stderr, p  # a URL that was given: nothing to add
