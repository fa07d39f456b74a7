"""``coord install-hooks`` / ``uninstall-hooks``: merging into Claude Code settings files without clobbering.

The commands run through a Typer app that registers the same functions
``coord`` does (``coordhub.cli.hooks``).
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from coordhub.cli.hooks import install_hooks, uninstall_hooks
from coordhub.hooks import install

app = typer.Typer()
app.command("install-hooks")(install_hooks)
app.command("uninstall-hooks")(uninstall_hooks)

FOREIGN: dict[str, Any] = {
    "permissions": {"allow": ["Bash(npm test)"], "deny": ["Read(./.env)"]},
    "env": {"FOO": "1"},
    "hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "/usr/local/bin/audit-bash"}]}],
        "Notification": [{"hooks": [{"type": "command", "command": "notify-send claude", "timeout": 3}]}],
        "PreCompact": [],
    },
    "model": "opus",
}


def run(*args: str, home: Path) -> Any:
    result = CliRunner().invoke(app, list(args), env={"HOME": str(home)}, catch_exceptions=False)
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "proj"
    (path / ".claude").mkdir(parents=True)
    return path


def write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def ours(data: dict[str, Any]) -> dict[str, list[str]]:
    """Our commands per event."""
    return {event: [h["command"] for g in groups for h in g["hooks"] if install.is_ours(h)]
            for event, groups in data.get("hooks", {}).items() if any(
                install.is_ours(h) for g in groups for h in g["hooks"])}


def test_install_merges_without_touching_anything_else(project: Path, tmp_path: Path) -> None:
    settings = project / ".claude" / "settings.local.json"
    write(settings, FOREIGN)
    r = run("install-hooks", "--dir", str(project), home=tmp_path)
    assert r.exit_code == 0, r.output
    data = json.loads(settings.read_text())
    assert {k: v for k, v in data.items() if k != "hooks"} == {k: v for k, v in FOREIGN.items() if k != "hooks"}
    assert list(data) == list(FOREIGN)  # key order kept
    assert data["hooks"]["PreToolUse"][0] == FOREIGN["hooks"]["PreToolUse"][0]
    assert data["hooks"]["Notification"] == FOREIGN["hooks"]["Notification"]
    assert data["hooks"]["PreToolUse"][1] == {
        "matcher": "Edit|Write|MultiEdit|NotebookEdit",
        "hooks": [{"type": "command", "command": data["hooks"]["PreToolUse"][1]["hooks"][0]["command"],
                   "timeout": 5}]}
    assert data["hooks"]["SessionStart"][0]["matcher"] == "startup|resume|clear|compact"
    assert data["hooks"]["PostToolUse"][0]["matcher"] == "*"
    assert "matcher" not in data["hooks"]["UserPromptSubmit"][0]
    commands = ours(data)
    assert sorted(commands) == sorted(e for e, *_ in install.HOOK_SET)
    for event, _matcher, name, _ in install.HOOK_SET:
        (command,) = commands[event]
        argv = shlex.split(command)
        assert argv[-1] == name and Path(argv[0]).is_absolute() and Path(argv[0]).exists()


def test_install_is_idempotent_and_uninstall_restores(project: Path, tmp_path: Path) -> None:
    settings = project / ".claude" / "settings.local.json"
    write(settings, FOREIGN)
    run("install-hooks", "--dir", str(project), home=tmp_path)
    once = settings.read_text()
    mtime = settings.stat().st_mtime_ns
    r = run("install-hooks", "--dir", str(project), home=tmp_path)
    assert r.exit_code == 0 and settings.read_text() == once
    # a second run says so (review: it printed "installed" again) and leaves the file alone
    assert f"coordhub hooks already installed in {settings}" in r.output and "nothing changed" in r.output, r.output
    assert "hooks installed in" not in r.output and settings.stat().st_mtime_ns == mtime
    r = run("uninstall-hooks", "--dir", str(project), home=tmp_path)
    assert r.exit_code == 0 and "removed" in r.output
    assert json.loads(settings.read_text()) == FOREIGN
    r = run("uninstall-hooks", "--dir", str(project), home=tmp_path)
    assert "nothing changed" in r.output


def test_a_stale_command_of_ours_is_replaced_and_a_mixed_group_split(project: Path, tmp_path: Path) -> None:
    settings = project / ".claude" / "settings.json"
    data = copy.deepcopy(FOREIGN)
    data["hooks"]["UserPromptSubmit"] = [{"hooks": [
        {"type": "command", "command": "/old/venv/bin/coord-hook prompt", "timeout": 9},
        {"type": "command", "command": "echo keep-me"}]}]
    write(settings, data)
    assert run("install-hooks", "--scope", "project", "--dir", str(project), home=tmp_path).exit_code == 0
    merged = json.loads(settings.read_text())
    groups = merged["hooks"]["UserPromptSubmit"]
    assert groups[0] == {"hooks": [{"type": "command", "command": "echo keep-me"}]}
    assert len(groups) == 2 and "/old/venv" not in json.dumps(merged)
    run("uninstall-hooks", "--scope", "project", "--dir", str(project), home=tmp_path)
    left = json.loads(settings.read_text())
    assert left["hooks"]["UserPromptSubmit"] == [{"hooks": [{"type": "command", "command": "echo keep-me"}]}]


def test_user_scope_and_a_new_file(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = run("install-hooks", "--scope", "user", home=home)
    assert r.exit_code == 0, r.output
    data = json.loads((home / ".claude" / "settings.json").read_text())
    assert list(data) == ["hooks"] and len(ours(data)) == 6
    run("uninstall-hooks", "--scope", "user", home=home)
    assert json.loads((home / ".claude" / "settings.json").read_text()) == {}


def test_dry_run_prints_and_writes_nothing(project: Path, tmp_path: Path) -> None:
    r = run("install-hooks", "--dir", str(project), "--dry-run", home=tmp_path)
    assert r.exit_code == 0
    assert len(ours(json.loads(r.output))) == 6
    assert not (project / ".claude" / "settings.local.json").exists()


@pytest.mark.parametrize("text", ["{\"hooks\": ", "[1, 2]", "{\"hooks\": []}", "{\"hooks\": {\"Stop\": {}}}",
                                  "{\"hooks\": {\"Stop\": [{\"hooks\": 3}]}}"])
@pytest.mark.parametrize("command", ["install-hooks", "uninstall-hooks"])
def test_a_malformed_settings_file_is_left_untouched(project: Path, tmp_path: Path, text: str,
                                                     command: str) -> None:
    settings = project / ".claude" / "settings.local.json"
    settings.write_text(text)
    r = run(command, "--dir", str(project), home=tmp_path)
    assert r.exit_code == 1
    assert str(settings) in r.output and "nothing was changed" in r.output
    assert settings.read_text() == text
    assert [p.name for p in settings.parent.iterdir()] == ["settings.local.json"]  # no temp file left


def test_bad_scope_is_a_usage_error(project: Path, tmp_path: Path) -> None:
    r = run("install-hooks", "--scope", "global", "--dir", str(project), home=tmp_path)
    assert r.exit_code == 2 and "--scope must be one of local, project, user" in r.output


def test_is_ours_recognises_only_our_commands() -> None:
    yes = ["/v/bin/coord-hook prompt", "coord-hook stop", "'/a b/coord-hook' session-end",
           "/usr/bin/python3 -m coordhub.hooks.run pre-tool-use", "C:\\\\v\\\\coord-hook.exe prompt"]
    no = ["coord-hook", "coord-hook unknown", "my-coord-hook prompt", "echo coord-hook prompt x",
          "python -m other prompt", "'unbalanced"]
    assert all(install.is_ours({"type": "command", "command": c}) for c in yes)
    assert not any(install.is_ours({"type": "command", "command": c}) for c in no)
    assert not install.is_ours({"type": "http", "url": "http://x"})


def test_install_warns_when_no_token_would_reach_the_hooks(project: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: hooks installed where no token is set fail open (nothing registered, no lease enforced) and
    install-hooks said nothing of it."""
    for name in ("COORD_TOKEN", "COORD_SESSION", "COORD_URL"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    bare = run("install-hooks", "--dir", str(project), home=home)
    assert bare.exit_code == 0 and "leases are NOT enforced" in bare.output
    monkeypatch.setenv("COORD_TOKEN", "coord_x")
    with_token = run("install-hooks", "--dir", str(project), home=home)
    assert with_token.exit_code == 0 and "NOT enforced" not in with_token.output
