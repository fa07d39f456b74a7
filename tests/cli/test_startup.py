"""``coord`` imports only what the command runs (issue 7 point 18), with Typer's behaviour unchanged.

No timing here (the machine is noisy; ``coord bench cli`` measures): these tests
check the mechanism, i.e. which modules a real ``coord`` process has imported
when it exits (the hot reads none of Typer, httpx2 or Rich; other commands
only their own module), that the fast coercion gives Typer's own results and
errors, and that ``--help`` shows no placeholder for flags.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer._coercion import build_runtime_param
from typer.testing import CliRunner

from coordhub.cli.group import FastCoercion
from coordhub.cli.main import app
from tests.conftest import LiveHub
from tests.coordcli import isolated_env

HEAVY = ("pydantic", "rich", "fastapi", "starlette", "uvicorn", "mcp", "coordhub.server", "coordhub.api",
         "coordhub.store", "coordhub.hooks.inbox")


_RUN = ("import atexit, json, sys\n"
        "out, fast = sys.argv.pop(1), sys.argv.pop(1) == 'fast'\n"
        "atexit.register(lambda: open(out, 'w').write(json.dumps(sorted(sys.modules))))\n"
        "from coordhub.cli.entry import main\n"
        "main(fast=fast)\n")


def _imported(tmp_path: Path, *args: str, fast: bool = True,
              **env: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules a real ``coord ARGS`` process had imported when it exited, and the process (``fast=False``:
    with the fast path of ``coordhub.cli.fast`` off, as for a command line it does not serve)."""
    out = tmp_path / "modules.json"
    p = subprocess.run([sys.executable, "-c", _RUN, str(out), "fast" if fast else "typer", *args], capture_output=True,
                       text=True, env=isolated_env(tmp_path, **env), cwd=tmp_path, timeout=60)
    modules = set(json.loads(out.read_text()))
    assert "coordhub.cli.entry" in modules, p.stderr[-500:]
    return modules, p


def _loaded(modules: set[str], prefix: str) -> bool:
    return any(m == prefix or m.startswith(prefix + ".") for m in modules)


def test_version_imports_no_cli_framework(tmp_path: Path) -> None:
    modules, p = _imported(tmp_path, "--version")
    assert p.returncode == 0 and p.stdout == "coord 0.1.0\n"
    assert not _loaded(modules, "typer") and not _loaded(modules, "httpx2")


def test_version_among_other_options_is_the_same_line(tmp_path: Path) -> None:
    _, p = _imported(tmp_path, "--url", "http://127.0.0.1:9", "--version")
    assert p.returncode == 0 and p.stdout == "coord 0.1.0\n"


@pytest.mark.parametrize("args", [("lock", "list"), ("msg", "inbox"), ("lock", "list", "--json"),
                                  ("msg", "inbox", "--limit", "5")])
def test_a_hot_read_imports_neither_typer_nor_httpx2(live_hub: LiveHub, tmp_path: Path, args: tuple[str, ...]) -> None:
    """Served by the fast path (``tests/cli/test_fast.py`` compares its output with the Typer CLI's)."""
    modules, p = _imported(tmp_path, *args, COORD_URL=live_hub.url, COORD_TOKEN=live_hub.token("LAPTOP/claude-main"))
    assert p.returncode == 0, p.stderr[-500:]
    assert [h for h in (*HEAVY, "typer", "httpx2", "click", "coordhub.cli.main") if _loaded(modules, h)] == []


@pytest.mark.parametrize("args", [("lock", "list"), ("msg", "inbox"), ("lock", "list", "--json"),
                                  ("msg", "inbox", "--limit", "5")])
def test_a_read_imports_only_its_own_command(live_hub: LiveHub, tmp_path: Path, args: tuple[str, ...]) -> None:
    modules, p = _imported(tmp_path, *args, fast=False, COORD_URL=live_hub.url,
                           COORD_TOKEN=live_hub.token("LAPTOP/claude-main"))
    assert p.returncode == 0, p.stderr[-500:]
    assert [h for h in HEAVY if _loaded(modules, h)] == []
    others = {"coordhub.cli.messages", "coordhub.cli.locks", "coordhub.cli.todos", "coordhub.cli.bench",
              "coordhub.cli.serve", "coordhub.cli.mcp", "coordhub.cli.hooks", "coordhub.cli.watch"}
    assert modules & others == {"coordhub.cli.locks" if args[0] == "lock" else "coordhub.cli.messages"}


def test_help_lists_every_command_in_order(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "coordhub", "--help"], capture_output=True, text=True,
                       env=isolated_env(tmp_path), cwd=tmp_path, timeout=60)
    names = re.findall(r"^│ (\S+)\s{2,}", p.stdout.split("Commands")[1], flags=re.M)
    assert names == ["status", "whoami", "msg", "lock", "todo", "component", "conv", "halt", "resume", "engage",
                     "sync", "serve", "token", "install-hooks", "install-git-hook",
                     "watch", "presence", "bench", "mcp", "mcp-config", "uninstall-hooks", "agent", "web", "init",
                     "assign", "stop", "wait", "retry", "resume-stuck", "log", "reconcile", "unpause", "test", "review",
                     "fix", "accept", "stages", "done", "merge", "pr", "notify", "plan", "approve", "split", "version",
                     "trust", "import", "compat", "config", "archive"]


def _walk(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    for name in getattr(command, "list_commands", lambda ctx: [])(None):
        out += _walk(command.commands[name], (*path, name))
    return out


def test_flags_show_no_value_placeholder_in_help(tmp_path: Path) -> None:
    """Every command's --help: a boolean flag (``--json``, ``--help``, ``--all`` …) shows no ``<bool>``.

    Every command in one process (the help is the app's); a few through a real ``coord`` process too, so
    the lazy entry point renders the same help.
    """
    paths = _walk(typer.main.get_command(app))
    assert len(paths) > 30
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
        assert result.exit_code == 0 and "--help" in result.output, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
    for path in [(), ("msg", "inbox"), ("lock", "claim"), ("halt",)]:
        p = subprocess.run([sys.executable, "-m", "coordhub", *path, "--help"], capture_output=True, text=True,
                           env=isolated_env(tmp_path), cwd=tmp_path, timeout=60)
        assert p.returncode == 0 and "--help" in p.stdout, (path, p.stderr)
        assert "<bool>" not in p.stdout, (path, p.stdout)
        if path == ("msg", "inbox"):
            assert "<int range>" in p.stdout  # options that take a value keep theirs


def _typer_param(path: tuple[str, ...], name: str) -> Any:
    command: Any = typer.main.get_command(app)
    for part in path:
        command = command.commands[part]
    return next(p for p in command.params if p.name == name)


VALUES = ["5", "500", "501", "0", "-3", "+5", " 7", "7 ", "1_0", "5.0", "abc", "", "0x10", "١٢", 5, 1000, 2.5, None,
          "pending", "all", "Done", "pending ", "urgent"]


@pytest.mark.parametrize(("path", "name"), [(("msg", "inbox"), "limit"), (("lock", "claim"), "ttl"),
                                            (("lock", "list"), "project"), ((), "timeout"), (("bench",), "runs"),
                                            (("todo", "list"), "status"), (("msg", "send"), "importance")])
def test_fast_coercion_gives_typers_results_and_errors(path: tuple[str, ...], name: str) -> None:
    param = _typer_param(path, name)
    fast = FastCoercion(annotation=param.type_descriptor.annotation,
                        parameter_info=param.type_descriptor.parameter_info)
    typers = build_runtime_param(param.type_descriptor)
    ctx = typer.Context(typer.main.get_command(app))
    for value in VALUES:
        outcomes = []
        for coercion in (fast, typers):
            try:
                result = coercion.coerce(value, param=param, ctx=ctx)
                outcomes.append(("ok", type(result), result))
            except typer.BadParameter as exc:
                outcomes.append(("error", None, exc.format_message()))
        assert outcomes[0] == outcomes[1], (name, value, outcomes)
