"""``coord mcp-config``: the registration command and .mcp.json entry; tokens only when asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COORD = [sys.executable, "-m", "coordhub"]


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    return subprocess.run([*COORD, *args], capture_output=True, text=True, cwd=home, timeout=60,
                          env={**clean, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), **env})


def entry(stdout: str) -> dict[str, object]:
    """The JSON block of the output."""
    start = stdout.index("\n{") + 1
    end = stdout.index("\n}", start) + 2
    return dict(json.loads(stdout[start:end])["mcpServers"]["coord"])


def test_stdio_form_uses_placeholders_not_the_token(tmp_path: Path) -> None:
    r = run(tmp_path, "mcp-config", COORD_URL="http://10.1.2.3:8001", COORD_TOKEN="s3cret-token")
    assert r.returncode == 0, r.stderr
    assert "s3cret-token" not in r.stdout
    command = next(line for line in r.stdout.splitlines() if line.startswith("claude mcp add"))
    assert command.startswith("claude mcp add --scope local -e COORD_URL=http://10.1.2.3:8001 "
                              '-e "COORD_TOKEN=$COORD_TOKEN" coord -- /')
    assert command.endswith(" mcp")
    e = entry(r.stdout)
    assert e["env"] == {"COORD_URL": "http://10.1.2.3:8001", "COORD_TOKEN": "${COORD_TOKEN}"}
    assert Path(str(e["command"])).is_absolute() and e["args"] in (["mcp"], ["-m", "coordhub", "mcp"])


def test_show_token_and_profile(tmp_path: Path) -> None:
    r = run(tmp_path, "--token", "s3cret-token", "mcp-config", "--show-token", "--tools", "seed002",
            "--scope", "user", COORD_URL="http://127.0.0.1:8001")
    assert r.returncode == 0, r.stderr
    assert "-e COORD_TOKEN=s3cret-token" in r.stdout and "--scope user" in r.stdout
    e = entry(r.stdout)
    assert e["env"]["COORD_TOKEN"] == "s3cret-token"  # type: ignore[index]
    assert e["args"][-2:] == ["--tools", "seed002"]  # type: ignore[index]


def test_http_form(tmp_path: Path) -> None:
    r = run(tmp_path, "mcp-config", "--http", "--url", "http://coord.lan:8001/", COORD_URL="http://other:1")
    assert r.returncode == 0, r.stderr
    assert ('claude mcp add --transport http --scope local coord http://coord.lan:8001/mcp '
            '--header "Authorization: Bearer $COORD_TOKEN"') in r.stdout
    assert entry(r.stdout) == {"type": "http", "url": "http://coord.lan:8001/mcp",
                               "headers": {"Authorization": "Bearer ${COORD_TOKEN}"}}


@pytest.mark.parametrize("args", [("--scope", "project", "--show-token"), ("--scope", "global"),
                                  ("--tools", "everything")])
def test_refusals(tmp_path: Path, args: tuple[str, ...]) -> None:
    r = run(tmp_path, "--token", "s3cret-token", "mcp-config", *args)
    assert r.returncode == 2 and r.stderr.startswith("coord: ") and "s3cret-token" not in r.stdout + r.stderr


def test_mcp_rejects_an_unknown_profile(tmp_path: Path) -> None:
    r = run(tmp_path, "mcp", "--tools", "nope")
    assert r.returncode == 2 and "--tools must be one of default, seed002, all" in r.stderr
