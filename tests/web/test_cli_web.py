"""``coord web``: the dashboard's URL, printed or opened (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def coord(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coordhub", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_print_gives_the_hub_root_without_any_token(tmp_path: Path) -> None:
    r = coord("--url", "http://127.0.0.1:9999", "--token", "coord_secret", "web", "--print")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "http://127.0.0.1:9999/\n"
    assert "coord_secret" not in r.stdout + r.stderr
    r = coord("web", "--print", env={"COORD_URL": "http://hub.example:8001/api/coord"})
    assert r.stdout == "http://hub.example:8001/\n"


def test_a_bad_url_is_a_usage_error() -> None:
    r = coord("--url", "ftp://x", "web", "--print")
    assert r.returncode == 2 and "not valid" in r.stderr


def test_open_without_a_browser_prints_the_url_and_says_so(tmp_path: Path) -> None:
    # BROWSER names a command that fails: webbrowser then has nothing that works
    r = coord("--url", "http://127.0.0.1:9999", "web", env={"BROWSER": "false", "DISPLAY": "", "WAYLAND_DISPLAY": "",
                                                              "PATH": str(tmp_path)})
    assert r.stdout == "http://127.0.0.1:9999/\n"
    assert r.returncode == 2 and "no browser" in r.stderr


def test_seed003_host_and_port_name_the_hub_that_serves_the_dashboard() -> None:
    # seed 003's `coord web --host H --port P` started a dashboard server; here that is `coord serve`'s to say.
    # The flags were unknown (exit 2, "No such option"): now exit 2 saying what to run, and nothing is opened.
    for flags in (["--host", "127.0.0.1"], ["--port", "7434"], ["--host", "0.0.0.0", "--port", "x"]):
        r = coord("--url", "http://127.0.0.1:9999", "web", *flags, env={"BROWSER": "false"})
        assert r.returncode == 2 and r.stdout == "", (flags, r.stderr)
        assert "`coord serve --host H --port P`" in r.stderr and "coord --url http://H:P web" in r.stderr, flags
